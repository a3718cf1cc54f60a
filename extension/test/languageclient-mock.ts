// A stand-in for `vscode-languageclient/node` in the unit tests: the real one needs the
// real `vscode` at import. The integration test exercises the protocol against the real
// server through vscode-jsonrpc instead.
export enum State {
  Stopped = 1,
  Starting = 3,
  Running = 2,
}
export enum TransportKind {
  stdio = 0,
  ipc = 1,
  pipe = 2,
  socket = 3,
}
export enum ErrorAction {
  Continue = 1,
  Shutdown = 2,
}
export enum CloseAction {
  DoNotRestart = 1,
  Restart = 2,
}

export class LanguageClient {
  static instances: LanguageClient[] = [];
  state = State.Stopped;
  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: unknown,
    readonly clientOptions: any,
  ) {
    LanguageClient.instances.push(this);
  }
  start(): Promise<void> {
    this.state = State.Running;
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.state = State.Stopped;
    return Promise.resolve();
  }
  dispose(): Promise<void> {
    return this.stop();
  }
  sendRequest(): Promise<unknown> {
    return Promise.resolve(null);
  }
  sendNotification(): Promise<void> {
    return Promise.resolve();
  }
  onProgress() {
    return { dispose: () => undefined };
  }
  readonly capabilities: Record<string, unknown> = {};
  // Fills the client capabilities as the real client does at start.
  registerFeature(f: { fillClientCapabilities(c: Record<string, unknown>): void }): void {
    f.fillClientCapabilities(this.capabilities);
  }
}
