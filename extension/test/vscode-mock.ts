// A stand-in for the `vscode` module, enough for the shim's logic to run under mocha in
// plain Node (VS Code itself cannot run here). setup.ts makes `require('vscode')` load it.
// Tests read and steer it through `mock` (messages shown, commands run, settings, editors).

type Listener<T> = (e: T) => unknown;

export class Disposable {
  constructor(private readonly f: () => void = () => undefined) {}
  static from(...ds: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => ds.forEach((d) => d.dispose()));
  }
  dispose(): void {
    this.f();
  }
}

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  // As VS Code's: the listener is called on `thisArgs` (the language client passes its
  // features' methods so), and the disposable goes into `disposables` too.
  event = (l: Listener<T>, thisArgs?: unknown, disposables?: Disposable[]): Disposable => {
    const f: Listener<T> = thisArgs === undefined ? l : (e) => l.call(thisArgs, e);
    this.listeners.push(f);
    const d = new Disposable(() => (this.listeners = this.listeners.filter((x) => x !== f)));
    disposables?.push(d);
    return d;
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
  isEqual(o: Position): boolean {
    return o.line === this.line && o.character === this.character;
  }
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: number | Position, b: number | Position, c?: number, d?: number) {
    this.start = typeof a === 'number' ? new Position(a, b as number) : a;
    this.end = typeof a === 'number' ? new Position(c!, d!) : (b as Position);
  }
  get isEmpty(): boolean {
    return this.start.isEqual(this.end);
  }
}

export class Selection extends Range {
  get active(): Position {
    return this.end;
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
    readonly query = '',
  ) {}
  static file(p: string): Uri {
    return new Uri('file', p);
  }
  static parse(s: string): Uri {
    const m = /^([a-z-]+):(?:\/\/)?([^?]*)(?:\?(.*))?$/.exec(s);
    return m ? new Uri(m[1]!, m[2]!, m[3] ?? '') : new Uri('file', s);
  }
  static from(c: { scheme: string; path: string; query?: string }): Uri {
    return new Uri(c.scheme, c.path, c.query ?? '');
  }
  static joinPath(u: Uri, ...parts: string[]): Uri {
    return new Uri(u.scheme, [u.path, ...parts].join('/'), u.query);
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${this.path}${this.query ? '?' + this.query : ''}`;
  }
}

export class TextDocument {
  version = 1;
  constructor(
    readonly uri: Uri,
    private text: string,
    readonly languageId = 'typescript',
  ) {}
  getText(): string {
    return this.text;
  }
  setText(t: string): void {
    this.text = t;
    this.version++;
  }
  get lineCount(): number {
    return this.text.split('\n').length;
  }
  lineAt(line: number): { text: string; range: Range } {
    const text = this.text.split('\n')[line] ?? '';
    return { text, range: new Range(line, 0, line, text.length) };
  }
  offsetAt(p: Position): number {
    const lines = this.text.split('\n');
    let o = 0;
    for (let i = 0; i < p.line; i++) o += lines[i]!.length + 1;
    return o + p.character;
  }
}

export class WorkspaceEdit {
  readonly edits: { uri: Uri; range: Range; newText: string }[] = [];
  readonly created: { uri: Uri; options?: unknown }[] = [];
  replace(uri: Uri, range: Range, newText: string): void {
    this.edits.push({ uri, range, newText });
  }
  insert(uri: Uri, position: Position, newText: string): void {
    this.edits.push({ uri, range: new Range(position, position), newText });
  }
  createFile(uri: Uri, options?: unknown): void {
    this.created.push({ uri, options });
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum TextEditorSelectionChangeKind {
  Keyboard = 1,
  Mouse = 2,
  Command = 3,
}

export enum TextEditorRevealType {
  Default = 0,
  InCenter = 1,
  InCenterIfOutsideViewport = 2,
  AtTop = 3,
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}
export enum ConfigurationTarget {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}
export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}
export enum LogLevel {
  Off = 0,
  Trace = 1,
  Debug = 2,
  Info = 3,
  Warning = 4,
  Error = 5,
}
export enum InlineCompletionTriggerKind {
  Invoke = 0,
  Automatic = 1,
}

// What tests look at and set.
export const mock = {
  config: {} as Record<string, unknown>,
  configUpdates: [] as [string, unknown][],
  messages: [] as { level: string; text: string; items: string[] }[],
  answers: [] as (string | undefined)[], // next answers of show*Message / showInputBox, in order
  executed: [] as { command: string; args: unknown[] }[],
  commands: new Map<string, (...a: unknown[]) => unknown>(),
  documents: [] as TextDocument[],
  applied: [] as WorkspaceEdit[],
  contentProviders: new Map<string, { provideTextDocumentContent(u: Uri): string }>(),
  activeTextEditor: undefined as { document: TextDocument; selection: Selection; selections: Selection[]; edit: (f: (b: { replace(r: Range, t: string): void }) => void) => Promise<boolean> } | undefined,
  clipboard: '',
  // Fire these to play the editor's events to the features that listen.
  activeEditorChanged: new EventEmitter<unknown>(),
  selectionChanged: new EventEmitter<unknown>(),
  documentChanged: new EventEmitter<unknown>(), // workspace.onDidChangeTextDocument
  decorationTypes: [] as { key: number; options: unknown; disposed: boolean }[],
  onApply: undefined as ((e: WorkspaceEdit) => void) | undefined, // runs inside applyEdit (the change events fire there)
  closedTabs: [] as unknown[],
  tabs: [] as { input: unknown }[],
  files: new Map<string, string>(), // workspace.fs.readFile's disk, by uri string
  shown: [] as { uri: Uri; options: unknown }[], // showTextDocument's calls
  applyResult: true,
  channels: new Map<string, { name: string; lines: string[] }>(), // output channels by name
  statusItems: [] as { text: string; command: string; visible: boolean }[],
  untitled: [] as { content: string; language: string }[], // openTextDocument({content})
  reset(): void {
    this.untitled = [];
    this.channels.clear();
    this.statusItems = [];
    this.files.clear();
    this.shown = [];
    this.applyResult = true;
    this.config = {};
    this.configUpdates = [];
    this.messages = [];
    this.answers = [];
    this.executed = [];
    this.commands.clear();
    this.documents = [];
    this.applied = [];
    this.contentProviders.clear();
    this.activeTextEditor = undefined;
    this.clipboard = '';
    this.activeEditorChanged.dispose();
    this.selectionChanged.dispose();
    this.documentChanged.dispose();
    this.decorationTypes = [];
    this.onApply = undefined;
    this.closedTabs = [];
    this.tabs = [];
  },
};

function answer(level: string, text: string, items: unknown[]): Promise<string | undefined> {
  mock.messages.push({ level, text, items: items.filter((i): i is string => typeof i === 'string') });
  return Promise.resolve(mock.answers.shift());
}

export const window = {
  get activeTextEditor() {
    return mock.activeTextEditor;
  },
  get visibleTextEditors() {
    return mock.activeTextEditor ? [mock.activeTextEditor] : [];
  },
  showInformationMessage: (t: string, ...items: unknown[]) => answer('info', t, items),
  showWarningMessage: (t: string, ...items: unknown[]) => answer('warning', t, items),
  showErrorMessage: (t: string, ...items: unknown[]) => answer('error', t, items),
  showInputBox: (o: unknown) => answer('input', JSON.stringify(o), []),
  setStatusBarMessage: (t: string) => {
    mock.messages.push({ level: 'status', text: t, items: [] });
    return new Disposable();
  },
  createOutputChannel: (name: string) => {
    const lines: string[] = [];
    const log = (l: string) => (s: string) => lines.push(`${l}: ${s}`);
    const channel = {
      name,
      lines,
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      debug: log('debug'),
      trace: log('trace'),
      appendLine: (s: string) => lines.push(s),
      append: (s: string) => lines.push(s),
      show: () => undefined,
      dispose: () => undefined,
    };
    mock.channels.set(name, channel);
    return channel;
  },
  createStatusBarItem: () => {
    const item = {
      text: '',
      tooltip: '',
      name: '',
      command: '',
      backgroundColor: undefined as unknown,
      visible: false,
      show: () => void (item.visible = true),
      hide: () => void (item.visible = false),
      dispose: () => undefined,
    };
    mock.statusItems.push(item);
    return item;
  },
  withProgress: <T>(_o: unknown, f: (p: unknown, token: unknown) => Promise<T>) =>
    f({ report: () => undefined }, { isCancellationRequested: false, onCancellationRequested: () => new Disposable() }),
  onDidChangeActiveTextEditor: (l: Listener<unknown>) => mock.activeEditorChanged.event(l),
  onDidChangeTextEditorSelection: (l: Listener<unknown>) => mock.selectionChanged.event(l),
  createTextEditorDecorationType: (options: unknown) => {
    const t = { key: mock.decorationTypes.length, options, disposed: false, dispose: () => void (t.disposed = true) };
    mock.decorationTypes.push(t);
    return t;
  },
  registerWebviewViewProvider: () => new Disposable(),
  showQuickPick: (items: { label: string }[], o: unknown) => {
    mock.messages.push({ level: 'pick', text: JSON.stringify(o), items: items.map((i) => i.label) });
    const a = mock.answers.shift();
    return Promise.resolve(items.find((i) => i.label === a));
  },
  showTextDocument: (uri: Uri, options: unknown) => {
    mock.shown.push({ uri, options });
    return Promise.resolve(undefined);
  },
  tabGroups: {
    get all() {
      return [{ tabs: mock.tabs }];
    },
    close: (t: unknown) => {
      mock.closedTabs.push(t);
      mock.tabs = mock.tabs.filter((x) => x !== t);
      return Promise.resolve(true);
    },
  },
};

export const commands = {
  registerCommand: (id: string, f: (...a: unknown[]) => unknown) => {
    mock.commands.set(id, f);
    return new Disposable(() => mock.commands.delete(id));
  },
  executeCommand: (command: string, ...args: unknown[]) => {
    mock.executed.push({ command, args });
    const f = mock.commands.get(command);
    return Promise.resolve(f ? f(...args) : undefined);
  },
};

export const workspace = {
  getConfiguration: (section?: string) => ({
    get: (key: string) => mock.config[section ? `${section}.${key}` : key],
    update: (key: string, value: unknown) => {
      mock.configUpdates.push([section ? `${section}.${key}` : key, value]);
      mock.config[section ? `${section}.${key}` : key] = value;
      return Promise.resolve();
    },
  }),
  get textDocuments() {
    return mock.documents;
  },
  workspaceFolders: undefined as { uri: Uri; name: string }[] | undefined,
  applyEdit: (e: WorkspaceEdit) => {
    mock.applied.push(e);
    if (mock.applyResult) mock.onApply?.(e);
    return Promise.resolve(mock.applyResult);
  },
  registerTextDocumentContentProvider: (scheme: string, p: { provideTextDocumentContent(u: Uri): string }) => {
    mock.contentProviders.set(scheme, p);
    return new Disposable(() => mock.contentProviders.delete(scheme));
  },
  openTextDocument: (o: { content: string; language: string } | Uri) => {
    if (o instanceof Uri) {
      const p = mock.contentProviders.get(o.scheme);
      return Promise.resolve(new TextDocument(o, p ? p.provideTextDocumentContent(o) : '', 'json'));
    }
    mock.untitled.push(o);
    return Promise.resolve(new TextDocument(Uri.from({ scheme: 'untitled', path: 'Untitled-1' }), o.content, o.language));
  },
  onDidChangeConfiguration: () => new Disposable(),
  onDidChangeTextDocument: (l: Listener<unknown>) => mock.documentChanged.event(l),
  fs: {
    createDirectory: () => Promise.resolve(),
    readFile: (u: Uri) => {
      const t = mock.files.get(u.toString());
      return t === undefined ? Promise.reject(new Error(`ENOENT ${u.toString()}`)) : Promise.resolve(new TextEncoder().encode(t));
    },
  },
};

export const env = {
  clipboard: {
    writeText: (s: string) => {
      mock.clipboard = s;
      return Promise.resolve();
    },
  },
};
