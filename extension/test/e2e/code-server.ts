// code-server 4.100.3 (VS Code 1.100.3's workbench, with its real extension host) for the
// end-to-end test: installed by scripts/setup into build/code-server/, started here on a
// free port of 127.0.0.1 with everything it writes (user data, extensions, XDG folders) in
// one temporary folder. A CodeServer is one running instance; stop() ends its process
// group (the server, its extension host, and the `latent lsp` the extension starts).
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const kCodeServerVersion = '4.100.3';

export const repoRoot = path.resolve(__dirname, '../../../..');
export const extensionRoot = path.join(repoRoot, 'extension');
export const codeServerEntry =
  process.env.LATENT_CODE_SERVER ?? path.join(repoRoot, 'build/code-server/node_modules/code-server/out/node/entry.js');
export const latentBin = process.env.LATENT_BIN ?? path.join(repoRoot, 'build/latent');
export const chromiumPath = process.env.LATENT_CHROMIUM ?? '/usr/bin/chromium';

// What is missing to run the test here (empty when nothing is).
export function missingPrerequisites(): string[] {
  const out: string[] = [];
  if (!fs.existsSync(codeServerEntry))
    out.push(`code-server ${kCodeServerVersion} (${codeServerEntry}): run scripts/setup, which installs it`);
  else {
    const v = execFileSync(process.execPath, [codeServerEntry, '--version'], { encoding: 'utf8' });
    if (!v.startsWith(kCodeServerVersion + ' '))
      out.push(`code-server ${kCodeServerVersion}, found ${v.trim()}: run scripts/setup`);
  }
  if (!fs.existsSync(chromiumPath)) out.push(`Chromium at ${chromiumPath} (apt package chromium)`);
  if (!fs.existsSync(latentBin)) out.push(`the server binary ${latentBin}: build it (scripts/setup)`);
  return out;
}

export interface Folders {
  root: string; // the temporary folder holding all of the below
  workspace: string; // the folder the workbench opens
  userData: string; // --user-data-dir
  userSettings: string; // the user's settings.json, in userData
  extensions: string; // --extensions-dir
  output: string; // screenshots and logs worth keeping: extension/test-output/e2e
}

export function makeFolders(): Folders {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'latent-e2e-'));
  const f: Folders = {
    root,
    workspace: path.join(root, 'workspace'),
    userData: path.join(root, 'user-data'),
    userSettings: path.join(root, 'user-data', 'User', 'settings.json'),
    extensions: path.join(root, 'extensions'),
    output: path.join(extensionRoot, 'test-output', 'e2e'),
  };
  for (const d of [f.workspace, path.join(f.userData, 'User'), f.extensions, f.output]) fs.mkdirSync(d, { recursive: true });
  for (const d of ['config', 'data', 'cache']) fs.mkdirSync(path.join(root, 'xdg', d), { recursive: true });
  return f;
}

function env(f: Folders): NodeJS.ProcessEnv {
  // code-server writes to ~/.config, ~/.local/share and ~/.cache even with
  // --user-data-dir: the XDG variables keep it inside the test's folder.
  return {
    ...process.env,
    XDG_CONFIG_HOME: path.join(f.root, 'xdg/config'),
    XDG_DATA_HOME: path.join(f.root, 'xdg/data'),
    XDG_CACHE_HOME: path.join(f.root, 'xdg/cache'),
    VSCODE_PROXY_URI: '',
  };
}

// The user's settings.json before the start (once started, change it in the editor:
// code-server does not notice it changing on disk).
export function writeUserSettings(f: Folders, settings: Record<string, unknown>): void {
  fs.writeFileSync(f.userSettings, JSON.stringify(settings, null, 2));
}

export function installExtension(f: Folders, vsix: string): void {
  execFileSync(
    process.execPath,
    [codeServerEntry, '--install-extension', vsix, '--extensions-dir', f.extensions, '--user-data-dir', f.userData],
    { env: env(f), stdio: 'pipe', timeout: 60_000 },
  );
}

export class CodeServer {
  private exited = false;
  private constructor(
    readonly folders: Folders,
    readonly url: string,
    private readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    child.once('exit', () => (this.exited = true));
  }

  // Starts code-server and waits until /healthz answers. The URL opens the workspace.
  static async start(f: Folders): Promise<CodeServer> {
    const config = path.join(f.root, 'config.yaml');
    fs.writeFileSync(config, 'auth: none\ncert: false\n');
    const logFile = path.join(f.output, 'code-server.log');
    const log = fs.openSync(logFile, 'w');
    const child = spawn(
      process.execPath,
      [
        codeServerEntry,
        '--config',
        config,
        '--auth',
        'none',
        '--bind-addr',
        '127.0.0.1:0', // a free port; the server prints which
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        '--disable-getting-started-override',
        '--user-data-dir',
        f.userData,
        '--extensions-dir',
        f.extensions,
        f.workspace,
      ],
      { env: env(f), cwd: f.root, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`code-server did not start in 60 s:\n${out}`)), 60_000);
      const onData = (b: Buffer) => {
        fs.writeSync(log, b);
        out += b.toString();
        const m = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`code-server exited (${code}) before listening:\n${out}`));
      });
    });
    // Keep logging after the start; the pipes must be read or the server blocks.
    child.stdout.removeAllListeners('data');
    child.stderr.removeAllListeners('data');
    child.stdout.on('data', (b: Buffer) => fs.writeSync(log, b));
    child.stderr.on('data', (b: Buffer) => fs.writeSync(log, b));
    const cs = new CodeServer(f, url, child, logFile);
    for (const t0 = Date.now(); ; ) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {
        // not yet
      }
      if (Date.now() - t0 > 30_000) throw new Error(`${url}/healthz did not answer in 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return cs;
  }

  get workbenchUrl(): string {
    return `${this.url}/?folder=${encodeURIComponent(this.folders.workspace)}`;
  }

  // The pids of the `latent lsp` processes started from the extension this test installed.
  latentServerPids(): number[] {
    const pids: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      let argv: string[];
      try {
        argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      } catch {
        continue;
      }
      if (argv[0]?.startsWith(this.folders.extensions + '/') && argv[1] === 'lsp') pids.push(Number(name));
    }
    return pids;
  }

  async stop(): Promise<void> {
    if (!this.exited && this.child.pid) {
      const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
      try {
        process.kill(-this.child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-this.child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 5000);
      await gone;
      clearTimeout(timer);
    }
    // The extension's server is a child of the extension host: make sure it is gone too.
    for (const pid of this.latentServerPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
