// The one object that owns the language client: it finds the binary, starts `latent lsp`,
// passes the settings (with the API key from SecretStorage), restarts the server with
// backoff when it dies, and tells the features when the client changes. Features reach
// the server only through `ctx.client` / `ctx.api`, which are undefined while it is down.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  ClientCapabilities,
  CloseAction,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  ServerOptions,
  State,
  StaticFeature,
  TransportKind,
} from 'vscode-languageclient/node';
import { LatentApi } from './api';
import { Backoff } from './backoff';
import { findBinary } from './binary';
import { currentSettings, serverSettings, UserSettings } from './config';
import { kServerStdio, TraceChannel } from './server_log';
import type { ServerState } from './status';

export const kSecretApiKey = 'latent.remote.apiKey';

export class Ctx implements vscode.Disposable {
  client: LanguageClient | undefined;
  api: LatentApi | undefined;
  state: ServerState = 'stopped';
  settings: UserSettings = currentSettings();
  readonly output: vscode.LogOutputChannel;
  readonly trace: TraceChannel; // the protocol trace (latent.trace.server), its own channel
  private readonly stateEmitter = new vscode.EventEmitter<ServerState>();
  readonly onDidChangeState = this.stateEmitter.event;
  private readonly backoff = new Backoff();
  private stopping = false;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private dead: LanguageClient | undefined; // a client whose server died, to dispose
  private readonly middleware: Middleware = {};

  constructor(readonly extension: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('Latent', { log: true });
    this.trace = new TraceChannel('Latent Trace');
  }

  // Hooks the features add before the client starts (inline completion, commands).
  addMiddleware(m: Middleware): void {
    Object.assign(this.middleware, m);
  }

  private setState(s: ServerState): void {
    this.state = s;
    this.stateEmitter.fire(s);
  }

  async serverSettings(): Promise<Record<string, unknown>> {
    const apiKey = (await this.extension.secrets.get(kSecretApiKey)) ?? '';
    const folders = vscode.workspace.workspaceFolders ?? [];
    // The index lives in the editor's storage for this workspace, never in the repo; the
    // server takes one database path only when there is one folder (else its default).
    const storage = this.extension.storageUri;
    const indexDb = storage && folders.length === 1 ? path.join(storage.fsPath, 'index.sqlite') : undefined;
    if (indexDb) await vscode.workspace.fs.createDirectory(storage!);
    return serverSettings(this.settings, { apiKey, indexDb });
  }

  async start(): Promise<void> {
    clearTimeout(this.restartTimer);
    if (this.dead) {
      await this.dead.dispose().catch(() => undefined);
      this.dead = undefined;
    }
    this.settings = currentSettings();
    const bin = findBinary(this.settings.path, this.extension.extensionPath);
    if ('error' in bin) {
      this.output.error(bin.error);
      this.setState('failed');
      void vscode.window.showErrorMessage(bin.error, 'Open Settings').then((a) => {
        if (a) void vscode.commands.executeCommand('workbench.action.openSettings', 'latent.path');
      });
      return;
    }
    // A .vsix unpacked by a tool that drops file modes leaves the bundled binary without
    // its executable bit; put it back rather than fail with EACCES.
    try {
      fs.accessSync(bin.path, fs.constants.X_OK);
    } catch {
      try {
        fs.chmodSync(bin.path, 0o755);
      } catch (e) {
        this.output.warn(`cannot make ${bin.path} executable: ${String(e)}`);
      }
    }
    this.output.info(`starting ${bin.path} lsp`);
    this.setState('starting');
    const serverOptions: ServerOptions = {
      command: bin.path,
      args: ['lsp'],
      transport: TransportKind.stdio,
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      outputChannel: this.output,
      traceOutputChannel: this.trace,
      stdioOptions: kServerStdio,
      initializationOptions: await this.serverSettings(),
      middleware: this.middleware,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          this.onClosed();
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };
    const client = new LanguageClient('latent', 'Latent', serverOptions, clientOptions);
    client.registerFeature(kSetupGuide);
    this.client = client;
    this.api = new LatentApi(client);
    try {
      this.stopping = false;
      await client.start();
      if (this.client === client) this.setState('running');
    } catch (e) {
      this.output.error(`latent lsp did not start: ${String(e)}`);
      if (this.client === client) {
        this.client = undefined;
        this.api = undefined;
        this.setState('failed');
      }
    }
  }

  // The server went away without being asked to: start it again after a delay that
  // grows with each crash, or give up after too many.
  private onClosed(): void {
    if (this.stopping) return;
    this.dead = this.client;
    this.client = undefined;
    this.api = undefined;
    const delay = this.backoff.crashed(Date.now());
    if (delay === undefined) {
      this.setState('failed');
      void vscode.window
        .showErrorMessage('Latent: the server keeps stopping; it stays off until you restart it.', 'Restart', 'Show Log')
        .then((a) => this.onCrashAction(a));
      return;
    }
    this.setState('restarting');
    this.output.warn(`latent lsp stopped unexpectedly; restarting in ${delay / 1000} s`);
    void vscode.window
      .showWarningMessage(`Latent: the server stopped unexpectedly; restarting in ${delay / 1000} s.`, 'Show Log')
      .then((a) => this.onCrashAction(a));
    this.restartTimer = setTimeout(() => void this.start(), delay);
  }

  private onCrashAction(a: string | undefined): void {
    if (a === 'Restart') void this.restart();
    if (a === 'Show Log') this.output.show(true);
  }

  async stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    const c = this.client;
    this.client = undefined;
    this.api = undefined;
    if (c) {
      this.stopping = true;
      try {
        if (c.state === State.Running || c.state === State.Starting) await c.stop(5000);
      } catch (e) {
        this.output.warn(`stopping latent lsp: ${String(e)}`);
      }
      await c.dispose().catch(() => undefined);
    }
    this.setState('stopped');
  }

  async restart(): Promise<void> {
    this.backoff.reset();
    await this.stop();
    await this.start();
  }

  // Sends the current settings (and the key) to a running server.
  async sendSettings(): Promise<void> {
    this.settings = currentSettings();
    if (!this.client || this.state !== 'running') return;
    await this.client.sendNotification('workspace/didChangeConfiguration', {
      settings: await this.serverSettings(),
    });
  }

  dispose(): void {
    void this.stop();
    this.stateEmitter.dispose();
    this.output.dispose();
    this.trace.dispose();
  }
}

// capabilities.experimental.latent.setupGuide: the extension guides a user without a model
// or server (first_run.ts), so the server does not also show "no model" as an error toast
// (one that stayed in the notification center after the model loaded).
const kSetupGuide: StaticFeature = {
  fillClientCapabilities(capabilities: ClientCapabilities): void {
    const experimental = (capabilities.experimental ??= {}) as Record<string, unknown>;
    experimental.latent = { ...(experimental.latent as object | undefined), setupGuide: true };
  },
  getState: () => ({ kind: 'static' }),
  initialize: () => undefined,
  clear: () => undefined,
};
