// package.json against the code: every contributed command is registered and every
// registered command contributed, menus and keybindings name real commands, every
// setting the code reads is declared with a description, and the bundle loads.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import { kDefaults, readSettings } from '../../src/config';

const ext = path.resolve(__dirname, '../../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ext, 'package.json'), 'utf8'));
const contributed = new Set<string>(pkg.contributes.commands.map((c: { command: string }) => c.command));

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

// An installed package's package.json (the workspace hoists them to the root).
function installed(name: string): string {
  for (const dir of [ext, path.dirname(ext)]) {
    const p = path.join(dir, 'node_modules', name, 'package.json');
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`${name} is not installed`);
}

describe('package.json', () => {
  it('contributes exactly the commands the code registers', () => {
    const registered = new Set<string>();
    for (const f of sources(path.join(ext, 'src'))) {
      for (const m of fs.readFileSync(f, 'utf8').matchAll(/(?:registerCommand|\bc)\('(latent\.[A-Za-z.]+)'/g)) registered.add(m[1]!);
    }
    assert.deepEqual([...registered].sort(), [...contributed].sort());
  });

  it('menus and keybindings name contributed or built-in commands', () => {
    const menus = Object.values(pkg.contributes.menus as Record<string, { command: string }[]>).flat();
    for (const m of [...menus, ...pkg.contributes.keybindings]) {
      assert.ok(contributed.has(m.command) || m.command.startsWith('editor.action.'), m.command);
    }
    assert.ok(pkg.contributes.keybindings.some((k: { command: string }) => k.command === 'editor.action.inlineSuggest.trigger'));
    assert.ok(pkg.contributes.menus['editor/context'].every((m: { when: string }) => m.when.includes('editorHasSelection')));
  });

  it('declares every setting the code reads, each with a description and a default', () => {
    const props = pkg.contributes.configuration.properties as Record<
      string,
      { description?: string; markdownDescription?: string; default?: unknown }
    >;
    const read: string[] = [];
    readSettings((k) => void read.push(k));
    for (const k of read) assert.ok(props[`latent.${k}`], `latent.${k} is not declared`);
    for (const [k, v] of Object.entries(props)) {
      const text = v.markdownDescription ?? v.description;
      assert.ok(text && text.length > 20, `${k} needs a description`);
      // A plain description shows Markdown literally: backticks need markdownDescription.
      assert.ok(!v.description?.includes('`'), `${k}: a description with Markdown must be markdownDescription`);
      assert.ok('default' in v, `${k} needs a default`);
    }
    assert.equal(props['latent.completion.debounceMs']!.default, 120);
    // The manifest's default list is the code's (config.ts kDefaults).
    assert.deepEqual(props['latent.completion.exclude']!.default, kDefaults.completionExclude);
    assert.deepEqual((props['latent.backend'] as { enum: string[] }).enum, ['local', 'remote']);
    assert.ok(!Object.keys(props).some((k) => /key|secret|token$/i.test(k) && !k.includes('maxTokens')), 'no secret in settings');
  });

  it('puts the chat view in its own activity-bar container', () => {
    const [container] = pkg.contributes.viewsContainers.activitybar;
    assert.ok(fs.existsSync(path.join(ext, container.icon)));
    assert.equal(pkg.contributes.views[container.id][0].type, 'webview');
    assert.equal(pkg.contributes.views[container.id][0].id, 'latent.chat');
  });

  it('asks for a VS Code that has the inline completion API the client needs', () => {
    const client = JSON.parse(fs.readFileSync(installed('vscode-languageclient'), 'utf8'));
    assert.equal(pkg.engines.vscode, client.engines.vscode);
    const types = JSON.parse(fs.readFileSync(installed('@types/vscode'), 'utf8'));
    assert.equal(`^${types.version}`, pkg.engines.vscode);
  });

  it('the bundle loads with only `vscode` external and exports activate/deactivate', () => {
    const bundle = path.join(ext, pkg.main);
    assert.ok(fs.existsSync(bundle), 'run the build first');
    // A `vscode` whose members (every capitalised name the bundle uses after a dot) are
    // harmless classes: the bundle must load, and ask for no module that is not built in.
    const names = fs.readFileSync(bundle, 'utf8').match(/\.[A-Z][A-Za-z0-9]+/g) ?? [];
    const fake = Object.fromEntries(names.map((n) => [n.slice(1), class {}]));
    const m = Module as unknown as { _load: (r: string, ...a: unknown[]) => unknown };
    const original = m._load;
    const asked: string[] = [];
    m._load = function (request: string, ...rest: unknown[]) {
      if (request === 'vscode') return fake;
      if (!request.startsWith('node:') && !Module.isBuiltin(request) && !request.startsWith('/')) asked.push(request);
      return original.call(this, request, ...rest);
    };
    try {
      delete require.cache[bundle];
      const e = m._load(bundle, module, false) as { activate?: unknown; deactivate?: unknown };
      assert.equal(typeof e.activate, 'function');
      assert.equal(typeof e.deactivate, 'function');
    } finally {
      m._load = original;
    }
    assert.deepEqual(asked, []);
  });
});
