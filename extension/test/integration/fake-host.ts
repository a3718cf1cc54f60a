// A fake VS Code host for the bundled extension (dist/extension.js): enough of the `vscode`
// API for the real vscode-languageclient inside the bundle to start `latent lsp`, sync
// documents and register its providers, with everything the extension does recorded.
// Built on test/vscode-mock.ts; any other class the bundle names is a plain stand-in.
import * as fs from 'node:fs';
import Module from 'node:module';
import * as base from '../vscode-mock';

const { Disposable, EventEmitter, Position, Range, Selection, Uri } = base;
type Handler = (...a: any[]) => any;

// A text editor showing a document: its selection (setting it fires the selection event,
// as VS Code's does), the decorations set on it by type, the ranges revealed.
export class FakeEditor {
  readonly decorations = new Map<unknown, { range: base.Range; renderOptions?: unknown }[]>();
  readonly revealed: base.Range[] = [];
  constructor(
    readonly document: base.TextDocument,
    private sel: base.Selection,
    private readonly selected: (e: unknown) => void,
  ) {}
  get selection(): base.Selection {
    return this.sel;
  }
  set selection(s: base.Selection) {
    this.sel = s;
    this.selected({ textEditor: this, selections: [s], kind: 3 });
  }
  get selections(): base.Selection[] {
    return [this.sel];
  }
  setDecorations(type: unknown, ranges: ({ range: base.Range; renderOptions?: unknown } | base.Range)[]): void {
    this.decorations.set(type, ranges.map((r) => (r instanceof Range ? { range: r } : r)));
  }
  revealRange(r: base.Range): void {
    this.revealed.push(r);
  }
}

const languageIds: Record<string, string> = { py: 'python', ts: 'typescript', js: 'javascript', cpp: 'cpp', h: 'cpp' };

export class InlineCompletionItem {
  constructor(
    public insertText: string | { value: string },
    public range?: base.Range,
    public command?: unknown,
  ) {}
}
export class InlineCompletionList {
  constructor(public items: InlineCompletionItem[]) {}
}
export class CodeActionKind {
  static readonly Empty = new CodeActionKind('');
  static readonly QuickFix = new CodeActionKind('quickfix');
  static readonly Refactor = new CodeActionKind('refactor');
  static readonly RefactorRewrite = new CodeActionKind('refactor.rewrite');
  static readonly RefactorExtract = new CodeActionKind('refactor.extract');
  static readonly RefactorInline = new CodeActionKind('refactor.inline');
  static readonly Source = new CodeActionKind('source');
  static readonly SourceOrganizeImports = new CodeActionKind('source.organizeImports');
  static readonly SourceFixAll = new CodeActionKind('source.fixAll');
  constructor(readonly value: string) {}
  append(part: string): CodeActionKind {
    return new CodeActionKind(this.value ? `${this.value}.${part}` : part);
  }
  contains(o: CodeActionKind): boolean {
    return this.value === o.value || o.value.startsWith(this.value + '.');
  }
  intersects(o: CodeActionKind): boolean {
    return this.contains(o) || o.contains(this);
  }
}

export interface Host {
  vscode: Record<string, unknown>;
  config: Record<string, unknown>;
  secrets: Map<string, string>;
  messages: { level: string; text: string }[];
  answers: (string | undefined)[];
  executed: { command: string; args: unknown[] }[];
  commands: Map<string, Handler>;
  providers: Map<string, unknown[]>;
  webviewProviders: Map<string, { resolveWebviewView(v: unknown): void }>;
  statusItems: { text: string; tooltip: string }[];
  opened: { content: string; language: string }[];
  applied: base.WorkspaceEdit[];
  documents: base.TextDocument[];
  openDocument(d: base.TextDocument): void;
  // The user types: `text` replaces `range` of an open document (didChange follows).
  editDocument(d: base.TextDocument, range: base.Range, text: string): void;
  // The user brings an editor for `d` to the front with the cursor at `selection`.
  showEditor(d: base.TextDocument, selection: base.Selection): FakeEditor;
  decorationTypes: { key: string; options: unknown }[];
  activeTextEditor: unknown;
  logLevel: number; // the output channels' (1: Trace, where the client writes its trace)
  log: string[];
  context(extensionPath: string, storage: string): Record<string, unknown>;
}

export function makeHost(bundle: string): Host {
  const ev = () => new EventEmitter<any>();
  const events = {
    open: ev(),
    close: ev(),
    change: ev(),
    save: ev(),
    willSave: ev(),
    config: ev(),
    folders: ev(),
    editor: ev(),
    visible: ev(),
    secrets: ev(),
    selection: ev(),
  };
  // Edits to an open document, as VS Code makes them: the text, the version, then one
  // change event with the changes last first (each range in the text before all of them).
  const change = (d: base.TextDocument, edits: { range: base.Range; newText: string }[]) => {
    const sorted = [...edits].sort((a, b) => d.offsetAt(b.range.start) - d.offsetAt(a.range.start));
    const contentChanges = sorted.map((x) => {
      const rangeOffset = d.offsetAt(x.range.start);
      return { range: x.range, rangeOffset, rangeLength: d.offsetAt(x.range.end) - rangeOffset, text: x.newText };
    });
    let text = d.getText();
    for (const c of contentChanges) text = text.slice(0, c.rangeOffset) + c.text + text.slice(c.rangeOffset + c.rangeLength);
    d.setText(text);
    events.change.fire({ document: d, contentChanges, reason: undefined });
  };
  // The open document of a uri, else the file read from disk and opened (didOpen follows).
  const documentOf = (u: base.Uri) => {
    const open = h.documents.find((d) => d.uri.toString() === u.toString());
    if (open) return open;
    const ext = u.fsPath.slice(u.fsPath.lastIndexOf('.') + 1);
    const d = new base.TextDocument(u, fs.readFileSync(u.fsPath, 'utf8'), languageIds[ext] ?? 'plaintext');
    h.openDocument(d);
    return d;
  };
  const h: Host = {
    vscode: {},
    config: {},
    secrets: new Map(),
    messages: [],
    answers: [],
    executed: [],
    commands: new Map(),
    providers: new Map(),
    webviewProviders: new Map(),
    statusItems: [],
    opened: [],
    applied: [],
    documents: [],
    activeTextEditor: undefined,
    log: [],
    logLevel: 3,
    decorationTypes: [],
    openDocument(d) {
      h.documents.push(d);
      events.open.fire(d);
    },
    editDocument(d, range, text) {
      change(d, [{ range, newText: text }]);
    },
    showEditor(d, selection) {
      const e = new FakeEditor(d, selection, (x) => events.selection.fire(x));
      h.activeTextEditor = e;
      events.editor.fire(e);
      events.visible.fire([e]);
      return e;
    },
    context(extensionPath, storage) {
      const memento = () => {
        const m = new Map<string, unknown>();
        return {
          get: (k: string, d?: unknown) => (m.has(k) ? m.get(k) : d),
          update: (k: string, v: unknown) => (m.set(k, v), Promise.resolve()),
          keys: () => [...m.keys()],
        };
      };
      return {
        subscriptions: [],
        extensionPath,
        extensionUri: Uri.file(extensionPath),
        storageUri: Uri.file(storage),
        globalStorageUri: Uri.file(storage + '-global'),
        logUri: Uri.file(storage + '-log'),
        extensionMode: 3,
        workspaceState: memento(),
        globalState: { ...memento(), setKeysForSync: () => undefined },
        secrets: {
          get: (k: string) => Promise.resolve(h.secrets.get(k)),
          store: (k: string, v: string) => (h.secrets.set(k, v), events.secrets.fire({ key: k }), Promise.resolve()),
          delete: (k: string) => (h.secrets.delete(k), events.secrets.fire({ key: k }), Promise.resolve()),
          onDidChange: events.secrets.event,
        },
        asAbsolutePath: (p: string) => `${extensionPath}/${p}`,
      };
    },
  };
  const say = (level: string) => (text: string, ...items: unknown[]) => {
    void items;
    h.messages.push({ level, text });
    return Promise.resolve(h.answers.shift());
  };
  const register = (kind: string) => (...a: unknown[]) => {
    h.providers.set(kind, a);
    return new Disposable();
  };
  const known: Record<string, unknown> = {
    // A filter with a glob pattern (**, *, ?) is tested against the path, as VS Code does.
    match: (selector: { pattern?: string }, doc: base.TextDocument) => {
      if (typeof selector?.pattern === 'string') {
        const re = selector.pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*\*\//g, '\uE000')
          .replace(/\*\*/g, '.*')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')
          .replace(/\uE000/g, '(?:.*/)?');
        return new RegExp(`^${re}$`).test(doc.uri.path) ? 10 : 0;
      }
      return ['file', 'untitled'].includes(doc.uri.scheme) ? 10 : 0;
    },
    createDiagnosticCollection: (name: string) => ({
      name,
      set: () => undefined,
      delete: () => undefined,
      clear: () => undefined,
      forEach: () => undefined,
      get: () => undefined,
      has: () => false,
      dispose: () => undefined,
    }),
  };
  const languages = new Proxy(known, {
    get: (t, k: string) => t[k] ?? (k.startsWith('register') ? register(k) : undefined),
  });
  const window = {
    get activeTextEditor() {
      return h.activeTextEditor;
    },
    get visibleTextEditors() {
      return h.activeTextEditor ? [h.activeTextEditor] : [];
    },
    onDidChangeActiveTextEditor: events.editor.event,
    onDidChangeVisibleTextEditors: events.visible.event,
    onDidChangeTextEditorSelection: events.selection.event,
    onDidChangeWindowState: ev().event,
    showInformationMessage: say('info'),
    showWarningMessage: say('warning'),
    showErrorMessage: say('error'),
    showInputBox: (o: unknown) => say('input')(JSON.stringify(o)),
    // Answers with the item whose label is the next answer, as VS Code returns the item.
    showQuickPick: (items: { label: string }[], o: unknown) =>
      say('pick')(JSON.stringify(o)).then((a) => items.find((i) => i.label === a)),
    showOpenDialog: () => Promise.resolve(undefined),
    setStatusBarMessage: (t: string) => (h.messages.push({ level: 'status', text: t }), new Disposable()),
    withProgress: (_o: unknown, task: Handler) =>
      task({ report: () => undefined }, { isCancellationRequested: false, onCancellationRequested: ev().event }),
    createOutputChannel: (name: string) => {
      const line = (l: string) => (s: string) => void h.log.push(`[${name}] ${l}: ${s}`);
      return {
        name,
        logLevel: h.logLevel,
        onDidChangeLogLevel: ev().event,
        trace: line('trace'),
        debug: line('debug'),
        info: line('info'),
        warn: line('warn'),
        error: (e: unknown) => line('error')(String(e)),
        append: line('out'),
        appendLine: line('out'),
        replace: line('out'),
        clear: () => undefined,
        show: () => undefined,
        hide: () => undefined,
        dispose: () => undefined,
      };
    },
    createStatusBarItem: () => {
      const item = { text: '', tooltip: '', name: '', command: '', backgroundColor: undefined, show: () => undefined, hide: () => undefined, dispose: () => undefined };
      h.statusItems.push(item);
      return item;
    },
    registerWebviewViewProvider: (id: string, p: { resolveWebviewView(v: unknown): void }) => {
      h.webviewProviders.set(id, p);
      return new Disposable();
    },
    // A uri opens (from disk unless open) in an editor brought to the front with the
    // selection asked for; a document object (the status JSON) is not shown.
    showTextDocument: (x: unknown, o?: { selection?: base.Range }) => {
      if (!(x instanceof Uri)) return Promise.resolve(undefined);
      const at = o?.selection ?? new Range(0, 0, 0, 0);
      return Promise.resolve(h.showEditor(documentOf(x), new Selection(at.start, at.end)));
    },
    createTextEditorDecorationType: (options: unknown) => {
      const t = { key: `decoration-${h.decorationTypes.length}`, options, dispose: () => undefined };
      h.decorationTypes.push(t);
      return t;
    },
    tabGroups: { all: [], onDidChangeTabs: ev().event, onDidChangeTabGroups: ev().event, close: () => Promise.resolve(true) },
  };
  const workspace = {
    getConfiguration: (section?: string) => {
      const key = (k: string) => (section ? `${section}.${k}` : k);
      return {
        get: (k: string, d?: unknown) => (key(k) in h.config ? h.config[key(k)] : d),
        has: (k: string) => key(k) in h.config,
        inspect: () => undefined,
        update: (k: string, v: unknown) => {
          h.config[key(k)] = v;
          events.config.fire({ affectsConfiguration: (s: string) => key(k) === s || key(k).startsWith(s + '.') });
          return Promise.resolve();
        },
      };
    },
    get textDocuments() {
      return h.documents;
    },
    notebookDocuments: [],
    workspaceFolders: undefined,
    name: undefined,
    onDidOpenTextDocument: events.open.event,
    onDidCloseTextDocument: events.close.event,
    onDidChangeTextDocument: events.change.event,
    onDidSaveTextDocument: events.save.event,
    onWillSaveTextDocument: events.willSave.event,
    onDidOpenNotebookDocument: ev().event,
    onDidCloseNotebookDocument: ev().event,
    onDidChangeNotebookDocument: ev().event,
    onDidSaveNotebookDocument: ev().event,
    onDidChangeConfiguration: events.config.event,
    onDidChangeWorkspaceFolders: events.folders.event,
    onDidCreateFiles: ev().event,
    onDidRenameFiles: ev().event,
    onDidDeleteFiles: ev().event,
    onWillCreateFiles: ev().event,
    onWillRenameFiles: ev().event,
    onWillDeleteFiles: ev().event,
    createFileSystemWatcher: () => ({ onDidCreate: ev().event, onDidChange: ev().event, onDidDelete: ev().event, dispose: () => undefined }),
    // One provider per scheme; opening a uri of that scheme reads the provider (recorded in
    // `opened` like an untitled document's content).
    registerTextDocumentContentProvider: (scheme: string, p: unknown) => (
      h.providers.set(`content:${scheme}`, [p]), h.providers.set('content', [p]), new Disposable()
    ),
    openTextDocument: (o: { content: string; language: string } | base.Uri) => {
      if (o instanceof Uri) {
        const p = h.providers.get(`content:${o.scheme}`)?.[0] as { provideTextDocumentContent(u: base.Uri): string } | undefined;
        if (!p) return Promise.resolve(documentOf(o));
        const content = p.provideTextDocumentContent(o);
        const language = o.path.endsWith('.json') ? 'json' : 'plaintext';
        h.opened.push({ content, language });
        return Promise.resolve(new base.TextDocument(o, content, language));
      }
      h.opened.push(o);
      return Promise.resolve(new base.TextDocument(Uri.from({ scheme: 'untitled', path: 'status.json' }), o.content, o.language));
    },
    // Recorded; the edits to open documents are made to them (files not open are left
    // to the test, which writes them to disk if it wants to).
    applyEdit: (e: base.WorkspaceEdit) => {
      h.applied.push(e);
      for (const d of h.documents) {
        const mine = e.edits.filter((x) => x.uri.toString() === d.uri.toString());
        if (mine.length) change(d, mine);
      }
      return Promise.resolve(true);
    },
    getWorkspaceFolder: () => undefined,
    fs: {
      createDirectory: (u: base.Uri) => (fs.mkdirSync(u.fsPath, { recursive: true }), Promise.resolve()),
      readFile: (u: base.Uri) => fs.promises.readFile(u.fsPath).then((b) => new Uint8Array(b)),
    },
  };
  const commands = {
    registerCommand: (id: string, f: Handler) => {
      h.commands.set(id, f);
      return new Disposable(() => h.commands.delete(id));
    },
    executeCommand: (command: string, ...args: unknown[]) => {
      h.executed.push({ command, args });
      const f = h.commands.get(command);
      return Promise.resolve(f ? f(...args) : undefined);
    },
    getCommands: () => Promise.resolve([...h.commands.keys()]),
  };
  // Every capitalised name the bundle uses gets a stand-in class; the real ones win.
  const names = fs.readFileSync(bundle, 'utf8').match(/\.[A-Z][A-Za-z0-9]+/g) ?? [];
  for (const n of names) h.vscode[n.slice(1)] = class {
    args: unknown[];
    constructor(...a: unknown[]) {
      this.args = a;
    }
  };
  Object.assign(h.vscode, base, {
    InlineCompletionItem,
    InlineCompletionList,
    CodeActionKind,
    Position,
    Range,
    LogLevel: { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 },
    UIKind: { Desktop: 1, Web: 2 },
    window,
    workspace,
    languages,
    commands,
    env: {
      language: 'en',
      appName: 'Visual Studio Code',
      appRoot: '/',
      uriScheme: 'vscode',
      machineId: 'test',
      sessionId: 'test',
      uiKind: 1,
      remoteName: undefined,
      clipboard: { writeText: () => Promise.resolve(), readText: () => Promise.resolve('') },
      openExternal: () => Promise.resolve(true),
    },
    extensions: { getExtension: () => undefined, all: [] },
    version: '1.91.0',
  });
  return h;
}

// The extension as a test drives it.
export interface LoadedExtension {
  activate(c: unknown): Promise<void>;
  deactivate(): Promise<void>;
}

// A fresh copy of the extension's bundle with `vscode` resolved to this host's (Node
// caches modules by path: without the fresh copy a second host would get the first's).
export function loadExtension(host: Host, bundle: string): LoadedExtension {
  const m = Module as unknown as { _load: (r: string, ...a: unknown[]) => unknown };
  const original = m._load;
  m._load = function (request: string, ...rest: unknown[]) {
    return request === 'vscode' ? host.vscode : original.call(this, request, ...rest);
  };
  delete require.cache[require.resolve(bundle)];
  try {
    return m._load(bundle, module, false) as LoadedExtension;
  } finally {
    m._load = original;
    delete require.cache[require.resolve(bundle)];
  }
}
