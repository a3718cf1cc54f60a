// One real-editor session shared by every e2e file (one code-server start per run): the
// .vsix built from this checkout, a tiny random-weight model from `latent make-model`, a
// workspace of real files, code-server 4.100.3, headless Chromium on the workbench.
// Loaded by mocha as a root-hook plugin (.mocharc.json "require"): the hooks below stop
// it all after the last test.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Browser, chromium } from 'playwright-core';
import {
  chromiumPath,
  CodeServer,
  extensionRoot,
  Folders,
  installExtension,
  latentBin,
  makeFolders,
  missingPrerequisites,
  writeUserSettings,
} from './code-server';
import { Workbench } from './workbench';

export const kExtensionId = 'latent-dev.latent';
export const kStatusItem = `${kExtensionId}.latent.status`;
export const kCompletionTokens = 16; // latent.completion.maxTokens, and `latent complete -n`

// The workspace the editor opens. Line numbers below are 1-based, as the editor shows them.
export const kWorkspace: Record<string, string> = {
  'shapes.py': `"""Shapes and their areas."""
import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius ** 2


class Square:
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side * self.side


def total_area(shapes):
    """The sum of the areas of \`shapes\`."""
    
`,
  'greet.ts': `export interface Person {
  name: string;
  age: number;
}

export function greet(person: Person): string {
  return \`Hello, \${person.name}!\`;
}
`,
};

export interface Session {
  folders: Folders;
  model: string; // the tiny GGUF
  server: CodeServer;
  browser: Browser;
  wb: Workbench;
  settings: Record<string, unknown>; // as last written
  // Changes the user's settings.json in its editor: `patch` applied (undefined removes a key).
  setSettings(patch: Record<string, unknown>): Promise<void>;
}

export function baseSettings(model: string): Record<string, unknown> {
  return {
    'latent.modelPath': model,
    'latent.completion.maxTokens': kCompletionTokens,
    'latent.nextEdit.enabled': false,
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'workbench.colorTheme': 'Default Dark Modern',
    'window.commandCenter': false,
    'chat.commandCenter.enabled': false,
    'editor.minimap.enabled': false,
    'files.autoSave': 'off',
    'git.enabled': false,
    'extensions.ignoreRecommendations': true,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
  };
}

// Whether this run may skip when the machine cannot run the test: never in CI.
export function mayskip(): boolean {
  return process.env.CI !== 'true' && process.env.LATENT_TEST_ALLOW_SKIP === '1';
}

let current: Promise<Session> | undefined;

// The session, started on first use.
export function session(): Promise<Session> {
  current ??= start();
  return current;
}

// For a describe's before(): skips (locally, LATENT_TEST_ALLOW_SKIP=1) or fails with what
// is missing, else starts the session.
export async function sessionOrSkip(ctx: Mocha.Context): Promise<Session> {
  const missing = missingPrerequisites();
  if (missing.length) {
    if (mayskip()) {
      console.log(`    (skipped: missing ${missing.join('; ')}; LATENT_TEST_ALLOW_SKIP=1)`);
      ctx.skip();
    }
    throw new Error(`the real-editor test needs ${missing.join('; ')}`);
  }
  return session();
}

async function start(): Promise<Session> {
  const folders = makeFolders();
  for (const [name, text] of Object.entries(kWorkspace)) fs.writeFileSync(path.join(folders.workspace, name), text);
  const model = path.join(folders.root, 'tiny.gguf');
  execFileSync(latentBin, ['make-model', '--preset', 'tiny', '--seed', '1', '--out', model], { stdio: 'pipe' });
  // The .vsix of this checkout (bundles and build/latent), built as scripts/setup builds
  // it; LATENT_E2E_VSIX=FILE tests another (e.g. extension/latent-0.1.0.vsix).
  let vsix = process.env.LATENT_E2E_VSIX;
  if (!vsix) {
    vsix = path.join(folders.output, 'latent-e2e.vsix');
    execFileSync(process.execPath, [path.join(extensionRoot, 'scripts/package.mjs'), '--out', vsix], {
      cwd: extensionRoot,
      stdio: 'pipe',
    });
  }
  installExtension(folders, vsix);
  let settings = baseSettings(model);
  writeUserSettings(folders, settings);
  const server = await CodeServer.start(folders);
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], headless: true });
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const wb = new Workbench(page, folders.output, folders.userData);
  await page.goto(server.workbenchUrl);
  await wb.ready();
  const s: Session = {
    folders,
    model,
    server,
    browser,
    wb,
    get settings() {
      return settings;
    },
    async setSettings(patch) {
      settings = { ...settings, ...patch };
      for (const [k, v] of Object.entries(patch)) if (v === undefined) delete settings[k];
      await wb.writeUserSettings(settings);
    },
  };
  return s;
}

// What `latent complete` prints at FILE:LINE:COL (1-based, COL in bytes) of `file` when
// the workspace holds `files`: a copy of the workspace in a folder of its own (so its
// name in the prompt is the same), a cache folder of its own (nothing computed by the
// editor's server is reused), the same model and token limit as the editor's settings.
export function latentComplete(s: Session, files: Record<string, string>, file: string, line: number, col: number): string {
  const root = fs.mkdtempSync(path.join(s.folders.root, 'cli-'));
  const ws = path.join(root, 'workspace');
  fs.mkdirSync(ws);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(ws, name), text);
  const out = execFileSync(
    latentBin,
    ['complete', '-m', s.model, '-n', String(kCompletionTokens), `${path.join(ws, file)}:${line}:${col}`],
    { env: { ...process.env, XDG_CACHE_HOME: path.join(root, 'cache') }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return out.endsWith('\n') ? out.slice(0, -1) : out; // it ends the completion with a newline
}

let failures = 0;

// Mocha root hooks: stop whatever was started; keep the temporary folder after a failure.
export const mochaHooks = {
  async afterEach(this: Mocha.Context) {
    if (this.currentTest?.state !== 'failed') return;
    failures++;
    // What the editor showed when it failed.
    const s = current && (await current.catch(() => undefined));
    const name = `failed-${failures}-${this.currentTest.title.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}`;
    if (s) console.log(`    (screenshot: ${await s.wb.screenshot(name).catch((e: Error) => e.message)})`);
  },
  async afterAll() {
    if (!current) return;
    const s = await current.catch(() => undefined);
    if (!s) return;
    await s.browser.close().catch(() => undefined);
    await s.server.stop();
    if (!failures && !process.env.LATENT_E2E_KEEP) fs.rmSync(s.folders.root, { recursive: true, force: true });
    else console.log(`    (kept ${s.folders.root}; code-server's log: ${s.server.logFile})`);
  },
};
