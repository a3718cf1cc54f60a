// The packaged code path end to end: dist/extension.js (with the real vscode-languageclient
// inside) activated in a fake VS Code host (fake-host.ts), starting the real `latent lsp`
// with the remote backend pointed at a fake OpenAI-compatible server on loopback. Covers
// settings + the SecretStorage key reaching the remote, inline completion through the
// middleware, the chat view's messages, Show Status, Edit Selection with Accept, and a
// server killed and restarted with backoff.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { Position, Selection, TextDocument, Uri } from '../vscode-mock';
import { Host, loadExtension, makeHost } from './fake-host';

const ext = path.resolve(__dirname, '../../..');
const binary = process.env.LATENT_BIN ?? path.join(ext, '..', 'build', 'latent');
const bundle = path.join(ext, 'dist', 'extension.js');
const kChatPieces = ['The function ', '**adds** its ', 'two arguments', ' and returns the sum.'];

interface Seen {
  path: string;
  auth: string | undefined;
  body: { model?: string; prompt?: string; suffix?: string; messages?: { role: string; content: string }[] };
}

// An OpenAI-compatible server that streams fixed answers (SSE), a little apart in time.
function fakeOpenAI(seen: Seen[]): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(raw || '{}') as Seen['body'];
      seen.push({ path: req.url ?? '', auth: req.headers.authorization, body });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const send = (o: unknown) => res.write(`data: ${JSON.stringify(o)}\n\n`);
      let pieces: string[];
      let chat = true;
      if (req.url === '/v1/completions') {
        chat = false;
        pieces = ['return a', ' + b;'];
      } else if (body.messages?.some((m) => m.content.startsWith('Rewrite the following code'))) {
        pieces = ['```ts\n', '  return a + b; // sum\n', '```\n'];
      } else {
        pieces = kChatPieces;
      }
      let i = 0;
      const next = () => {
        if (i < pieces.length) {
          const text = pieces[i++]!;
          send({ choices: [chat ? { delta: { content: text } } : { text }] });
          setTimeout(next, 40); // the server batches partial results every 30 ms
        } else {
          send({ choices: [], usage: { prompt_tokens: 10, prompt_tokens_details: { cached_tokens: 4 } } });
          res.end('data: [DONE]\n\n');
        }
      };
      next();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// Processes whose parent is this one and whose command line names `lsp`.
function lspChildren(): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (ppid === process.pid && cmd.includes('lsp')) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 15000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the bundled extension in a fake VS Code host', function () {
  this.timeout(60000);
  let host: Host;
  let server: http.Server;
  const seen: Seen[] = [];
  let tmp: string;
  let extension: { activate(c: unknown): Promise<void>; deactivate(): Promise<void> };
  let doc: TextDocument;
  let savedCache: string | undefined;

  before(async function () {
    if (!fs.existsSync(binary)) {
      if (process.env.LATENT_TEST_ALLOW_SKIP === '1') {
        console.log(`    (skipped: no server at ${binary}; LATENT_TEST_ALLOW_SKIP=1)`);
        this.skip();
      }
      throw new Error(`no latent binary at ${binary}: build it (scripts/setup) or set LATENT_BIN`);
    }
    assert.ok(fs.existsSync(bundle), 'dist/extension.js: run the build first');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latent-host-'));
    savedCache = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = path.join(tmp, 'cache'); // inherited by the server
    server = await fakeOpenAI(seen);
    const port = (server.address() as AddressInfo).port;
    host = makeHost(bundle);
    Object.assign(host.config, {
      'latent.path': binary,
      'latent.backend': 'remote',
      'latent.remote.url': `http://127.0.0.1:${port}`,
      'latent.remote.model': 'fake-model',
      'latent.index.enabled': false,
      'latent.completion.debounceMs': 10,
    });
    host.secrets.set('latent.remote.apiKey', 'sk-e2e');
    extension = loadExtension(host, bundle);
    await extension.activate(host.context(ext, path.join(tmp, 'storage')));
    doc = new TextDocument(
      Uri.file(path.join(tmp, 'add.ts')),
      'export function add(a: number, b: number): number {\n  \n}\n',
      'typescript',
    );
    host.openDocument(doc);
  });

  after(async () => {
    await extension?.deactivate();
    server?.close();
    if (savedCache === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = savedCache;
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const exec = (c: string, ...a: unknown[]) =>
    (host.vscode.commands as { executeCommand: (c: string, ...a: unknown[]) => Promise<unknown> }).executeCommand(c, ...a);

  const inline = async () => {
    const [, provider] = host.providers.get('registerInlineCompletionItemProvider') as [unknown, { provideInlineCompletionItems: (...a: unknown[]) => Promise<unknown> }];
    return (await provider.provideInlineCompletionItems(doc, new Position(1, 2), { triggerKind: 1 }, new CancellationTokenSource().token)) as
      | { items: { insertText: string; range: { start: Position } }[] }
      | { insertText: string }[];
  };

  it('starts latent lsp and registers the inline completion provider', async () => {
    await until('the provider', () => host.providers.has('registerInlineCompletionItemProvider'));
    assert.equal(lspChildren().length, 1);
    assert.ok(!host.messages.some((m) => m.level === 'error'), JSON.stringify(host.messages));
    // The server's stderr at its own levels: info is info (the client's default made every
    // line an error).
    await until('the server\'s start line', () => host.log.some((l) => /^\[Latent\] info: latent lsp \S+ started/.test(l)));
    assert.ok(!host.log.some((l) => l.startsWith('[Latent] error:')), host.log.join('\n'));
  });

  it('inline completion goes through the middleware to the remote, with the key', async () => {
    const r = await inline();
    const items = Array.isArray(r) ? r : r.items;
    assert.equal(items.length, 1);
    assert.match(items[0]!.insertText, /^return a \+ b;/);
    const fim = seen.find((s) => s.path === '/v1/completions')!;
    assert.ok(fim, JSON.stringify(seen.map((s) => s.path)));
    assert.equal(fim.auth, 'Bearer sk-e2e');
    assert.equal(fim.body.model, 'fake-model');
    assert.match(fim.body.prompt!, /export function add/);
    assert.match(fim.body.suffix!, /^\n}\n/);
    await until('the latency in the status bar', () => host.statusItems.some((i) => / ms$/.test(i.text)));
  });

  it('no inline completion in VS Code\'s own settings files', async () => {
    const before = seen.filter((s) => s.path === '/v1/completions').length;
    const [, provider] = host.providers.get('registerInlineCompletionItemProvider') as [unknown, { provideInlineCompletionItems: (...a: unknown[]) => Promise<unknown> }];
    for (const file of [path.join(tmp, '.vscode', 'settings.json'), path.join(tmp, 'User', 'keybindings.json')]) {
      const settings = new TextDocument(Uri.file(file), '{\n  "editor.fontSize": 1\n}\n', 'jsonc');
      host.openDocument(settings);
      const r = await provider.provideInlineCompletionItems(settings, new Position(1, 2), { triggerKind: 1 }, new CancellationTokenSource().token);
      assert.equal(r, undefined, file);
    }
    assert.equal(seen.filter((s) => s.path === '/v1/completions').length, before, 'nothing reached the server');
  });

  it('the chat view streams an answer from the webview\'s question', async () => {
    const provider = host.webviewProviders.get('latent.chat')!;
    const posted: { type: string; text?: string }[] = [];
    const incoming = new (host.vscode.EventEmitter as new () => { event: unknown; fire(x: unknown): void })();
    const webview = {
      options: {},
      html: '',
      cspSource: 'vscode-webview://test',
      asWebviewUri: (u: Uri) => u,
      postMessage: (m: { type: string }) => (posted.push(m), Promise.resolve(true)),
      onDidReceiveMessage: incoming.event,
    };
    provider.resolveWebviewView({ webview, onDidDispose: () => ({ dispose: () => undefined }) });
    assert.match(webview.html, /Content-Security-Policy/);
    incoming.fire({ type: 'ready' });
    incoming.fire({ type: 'send', text: 'what does add do?', includeSelection: false, includeFile: false, evil: 1 });
    incoming.fire({ type: 'send', text: 'what does add do?', includeSelection: false, includeFile: false });
    await until('the answer', () => posted.some((m) => m.type === 'end'));
    const deltas = posted.filter((m) => m.type === 'delta').map((m) => m.text);
    assert.ok(deltas.length >= 2, `streamed in ${deltas.length} pieces`);
    assert.equal(deltas.join(''), kChatPieces.join(''));
    assert.deepEqual(posted[posted.length - 1], { type: 'end' });
    assert.equal(posted.filter((m) => m.type === 'turn').length, 1, 'the malformed message was ignored');
    assert.ok(host.log.some((l) => /ignored a malformed message/.test(l)));
  });

  it('Show Status opens the server\'s status', async () => {
    await exec('latent.showStatus');
    const status = JSON.parse(host.opened[host.opened.length - 1]!.content) as { backend: string; settings: { remote: { apiKey: string } } };
    assert.match(status.backend, /^remote http:\/\/127\.0\.0\.1:\d+\/v1 \(fake-model\)$/);
    assert.equal(status.settings.remote.apiKey, '***');
  });

  it('Edit Selection shows a diff and Accept applies the edit', async () => {
    host.activeTextEditor = { document: doc, selection: new Selection(1, 0, 2, 0), selections: [new Selection(1, 0, 2, 0)] };
    host.answers.push('implement it');
    await exec('latent.editSelection');
    const diff = host.executed.find((e) => e.command === 'vscode.diff');
    assert.ok(diff, JSON.stringify(host.messages));
    await exec('latent.acceptEdit');
    const edit = host.applied[0] as unknown as { edits: { newText: string }[] };
    assert.equal(edit.edits[0]!.newText, '  return a + b; // sum\n');
  });

  it('a killed server is restarted after a delay, with a notification', async () => {
    const [pid] = lspChildren();
    process.kill(pid!, 'SIGKILL');
    await until('the notification', () => host.messages.some((m) => /restarting in 1 s/.test(m.text)));
    const restarted = await until('a new server', () => {
      const now = lspChildren();
      return now.length === 1 && now[0] !== pid ? now[0] : undefined;
    });
    assert.ok(restarted);
    await until('completion again', async () => {
      try {
        const r = await inline();
        const items = Array.isArray(r) ? r : r?.items;
        return items?.length ? true : undefined;
      } catch {
        return undefined;
      }
    });
  });

  it('deactivation shuts the server down', async () => {
    await extension.deactivate();
    await until('no server', () => lspChildren().length === 0);
  });
});
