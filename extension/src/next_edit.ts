// Next edit suggestions: after the user edits and pauses, ask `latent/nextEdit` for the
// edit they will likely make next (the index's references after a rename or a signature
// change, else the model's rewrite of the region around the cursor) and offer the first
// one. Near the cursor it shows as a diff in place (the old text struck through, the new
// text after it); elsewhere as a marked line plus a status-bar hint. Tab (bound while the
// context key latent.nextEditVisible is set) jumps to it, Tab again accepts it (one
// WorkspaceEdit) and asks for the next; Esc dismisses. Inline completion wins: while our
// ghost text is shown at the cursor the suggestion is hidden and the key is off.
//
// VS Code's own inline-edit presentation is proposed API in the ^1.91 engine the extension
// targets, so decorations it is. Timers are injected so tests decide the order of events.
import * as vscode from 'vscode';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import type { CancellationToken } from 'vscode-jsonrpc';
import type { Outcome } from './api';
import type { NextEditFeedbackParams, NextEditItem, NextEditParams, NextEditResult } from './protocol';

export const kContextKey = 'latent.nextEditVisible';
// The cursor within this many lines of the edit counts as "at it": the diff shows in
// place and Tab accepts; farther away Tab jumps first.
export const kNearLines = 2;
// The new text shown after the old one is cut to this many characters.
const kMaxShown = 120;

export interface NextEditApi {
  nextEdit(params: NextEditParams, token?: CancellationToken): Promise<Outcome<NextEditResult>>;
  nextEditFeedback(params: NextEditFeedbackParams): Promise<void>;
}

export interface NextEditSettings {
  enabled: boolean;
  debounceMs: number;
  model: boolean;
}

export interface Timers {
  set(f: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  set: (f, ms) => setTimeout(f, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface NextEditDeps {
  api: () => NextEditApi | undefined; // undefined while the server is down
  settings: () => NextEditSettings;
  timers?: Timers;
  log?: (line: string) => void;
}

// Where the suggestion shows, for the active editor's cursor.
export type Placement = 'inline' | 'far' | 'otherFile';

interface Shown {
  item: NextEditItem;
  hidden: boolean; // held back while ghost text is visible
}

function toRange(r: NextEditItem['range']): vscode.Range {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}

function validItem(x: unknown): x is NextEditItem {
  const i = x as Partial<NextEditItem> | null;
  const pos = (p: unknown) => {
    const q = p as { line?: unknown; character?: unknown } | null;
    return typeof q === 'object' && q !== null && Number.isInteger(q.line) && Number.isInteger(q.character);
  };
  return (
    typeof i === 'object' &&
    i !== null &&
    typeof i.id === 'string' &&
    typeof i.uri === 'string' &&
    typeof i.newText === 'string' &&
    typeof i.range === 'object' &&
    i.range !== null &&
    pos(i.range.start) &&
    pos(i.range.end)
  );
}

// One line for an `after` decoration: line breaks shown as ⏎, cut to a length.
export function flatten(text: string, max = kMaxShown): string {
  const one = text.replace(/\r?\n/g, ' ⏎ ');
  return one.length > max ? one.slice(0, max - 1) + '…' : one;
}

function baseName(uri: string): string {
  const p = uri.split('?')[0]!;
  return decodeURIComponent(p.slice(p.lastIndexOf('/') + 1));
}

export class NextEditController implements vscode.Disposable {
  private timer: unknown;
  private inflight: CancellationTokenSource | undefined;
  private shown: Shown | undefined;
  private readonly sentShown = new Set<string>();
  private ghost: { uri: string; version: number; line: number; character: number } | undefined;
  private applying: string | undefined; // the uri our own accepted edit is changing
  // An accept in progress: Tab stays ours (swallowed) until the edit is applied and the
  // next suggestion is asked, so a quick second Tab never types into the code.
  private accepting = false;
  private jumping = false; // showTextDocument in progress: editor changes are the jump's
  private retried = false; // one more ask after a stale answer with no typing since
  private contextValue = false;
  private hint: vscode.Disposable | undefined;
  private decorated: vscode.TextEditor[] = [];
  private types: Record<'removed' | 'added' | 'far', vscode.TextEditorDecorationType> | undefined;
  private readonly timers: Timers;

  constructor(private readonly deps: NextEditDeps) {
    this.timers = deps.timers ?? realTimers;
  }

  activate(): vscode.Disposable[] {
    return [
      vscode.workspace.onDidChangeTextDocument((e) => this.onDocumentChanged(e)),
      vscode.window.onDidChangeActiveTextEditor((e) => this.onEditorChanged(e)),
      vscode.window.onDidChangeTextEditorSelection((e) => this.onSelectionChanged(e)),
      vscode.commands.registerCommand('latent.nextEdit.jumpOrAccept', () => this.jumpOrAccept()),
      vscode.commands.registerCommand('latent.nextEdit.dismiss', () => this.dismiss()),
      this,
    ];
  }

  // The suggestion on offer, if any (tests).
  get current(): NextEditItem | undefined {
    return this.shown?.item;
  }

  // -- events ---------------------------------------------------------------------------

  private onDocumentChanged(e: vscode.TextDocumentChangeEvent): void {
    if (e.contentChanges.length === 0) return; // dirty flag, save: nothing typed
    const uri = e.document.uri.toString();
    if (this.applying === uri) return; // our accepted edit: accept() asks again itself
    if (this.ghost?.uri === uri) this.ghost = undefined;
    // Another edit to the document the suggestion is for, or to the one it was asked
    // from: its range no longer holds.
    if (this.shown && this.shown.item.uri === uri) this.clear();
    const active = vscode.window.activeTextEditor;
    if (active && active.document === e.document) {
      if (this.shown) this.clear(); // the user typed on: a new ask replaces it
      this.retried = false;
      this.schedule();
    }
  }

  private onEditorChanged(editor: vscode.TextEditor | undefined): void {
    // VS Code reports no active editor for a moment while it switches (a jump to another
    // file included): that is not the user leaving.
    if (!editor || this.jumping) return;
    this.cancel();
    this.ghost = undefined;
    if (!this.shown) return;
    // A jump to another file lands here too: the suggestion stays when the new editor is
    // the document it is for.
    if (editor && editor.document.uri.toString() === this.shown.item.uri) this.render();
    else this.clear();
  }

  private onSelectionChanged(e: vscode.TextEditorSelectionChangeEvent): void {
    if (e.textEditor !== vscode.window.activeTextEditor) return;
    const p = e.selections[0]?.active;
    const g = this.ghost;
    if (g && (!p || p.line !== g.line || p.character !== g.character)) this.ghost = undefined;
    if (this.shown) this.render(); // inline or far depends on the cursor
  }

  // The inline completion middleware showed ghost text at `position`: it owns Tab there.
  ghostShown(document: vscode.TextDocument, position: vscode.Position): void {
    const uri = document.uri.toString();
    this.ghost = { uri, version: document.version, line: position.line, character: position.character };
    if (this.shown) this.render();
  }

  // The settings changed: turning the feature off takes any suggestion away.
  settingsChanged(): void {
    if (!this.deps.settings().enabled) {
      this.cancel();
      this.clear();
    }
  }

  // -- asking ---------------------------------------------------------------------------

  private cancel(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.inflight?.cancel();
    this.inflight?.dispose();
    this.inflight = undefined;
  }

  // Asks after the pause; each call restarts it and cancels a request in flight.
  private schedule(delayMs = this.deps.settings().debounceMs): void {
    this.cancel();
    if (!this.deps.settings().enabled) return;
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      this.askLogged();
    }, delayMs);
  }

  private askLogged(): void {
    this.ask().catch((e: unknown) => this.deps.log?.(`nextEdit: ${String(e)}`));
  }

  // Asks for the active editor's cursor now; resolves when the answer is handled.
  async ask(): Promise<void> {
    const s = this.deps.settings();
    const api = this.deps.api();
    const editor = vscode.window.activeTextEditor;
    if (!s.enabled || !api || !editor || !editor.selection.isEmpty) return;
    if (!['file', 'untitled'].includes(editor.document.uri.scheme)) return;
    this.cancel();
    const doc = editor.document;
    const version = doc.version;
    const pos = editor.selection.active;
    const src = new CancellationTokenSource();
    this.inflight = src;
    const params: NextEditParams = {
      textDocument: { uri: doc.uri.toString(), version },
      position: { line: pos.line, character: pos.character },
      model: s.model,
    };
    let out: Outcome<NextEditResult>;
    try {
      out = await api.nextEdit(params, src.token);
    } catch (e) {
      out = { kind: 'error', message: String(e) };
    }
    if (this.inflight !== src || src.token.isCancellationRequested) return; // superseded
    this.inflight = undefined;
    src.dispose();
    if (out.kind !== 'ok') {
      if (out.kind === 'error') this.deps.log?.(`nextEdit: ${out.message}`);
      return;
    }
    const r = out.value;
    if (!r || typeof r.version !== 'number' || !Array.isArray(r.edits)) return;
    if (doc.version !== version) return; // typed since: the next ask is scheduled
    if (r.version !== version) {
      // The server had another version of the document (its copy lagged): ask once more.
      if (!this.retried) {
        this.retried = true;
        this.schedule();
      }
      return;
    }
    if (vscode.window.activeTextEditor?.document !== doc) return;
    const item = r.edits.find(validItem);
    if (!item) return;
    this.shown = { item, hidden: false };
    this.render();
  }

  // -- showing --------------------------------------------------------------------------

  private setContext(v: boolean): void {
    if (v === this.contextValue) return;
    this.contextValue = v;
    void vscode.commands.executeCommand('setContext', kContextKey, v);
  }

  private decorationTypes() {
    this.types ??= {
      removed: vscode.window.createTextEditorDecorationType({
        backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground'),
        textDecoration: 'line-through',
      }),
      added: vscode.window.createTextEditorDecorationType({
        after: {
          backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground'),
          color: new vscode.ThemeColor('editor.foreground'),
          margin: '0 0 0 0.25em',
        },
      }),
      far: vscode.window.createTextEditorDecorationType({
        isWholeLine: true,
        backgroundColor: new vscode.ThemeColor('diffEditor.insertedLineBackground'),
        overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.addedForeground'),
        after: { color: new vscode.ThemeColor('editorCodeLens.foreground'), margin: '0 0 0 2em' },
      }),
    };
    return this.types;
  }

  private undecorate(): void {
    if (this.types) {
      for (const ed of this.decorated) {
        ed.setDecorations(this.types.removed, []);
        ed.setDecorations(this.types.added, []);
        ed.setDecorations(this.types.far, []);
      }
    }
    this.decorated = [];
    this.hint?.dispose();
    this.hint = undefined;
  }

  private ghostVisible(editor: vscode.TextEditor | undefined): boolean {
    const g = this.ghost;
    if (!g || !editor) return false;
    const p = editor.selection.active;
    const d = editor.document;
    return d.uri.toString() === g.uri && d.version === g.version && p.line === g.line && p.character === g.character;
  }

  // Where the suggestion is against the active editor's cursor.
  placement(editor = vscode.window.activeTextEditor): Placement | undefined {
    const it = this.shown?.item;
    if (!it) return undefined;
    if (!editor || editor.document.uri.toString() !== it.uri) return 'otherFile';
    const line = editor.selection.active.line;
    return line >= it.range.start.line - kNearLines && line <= it.range.end.line + kNearLines ? 'inline' : 'far';
  }

  private render(): void {
    this.undecorate();
    const s = this.shown;
    const editor = vscode.window.activeTextEditor;
    if (!s) return this.setContext(false);
    s.hidden = this.ghostVisible(editor);
    if (s.hidden) return this.setContext(false);
    const it = s.item;
    const range = toRange(it.range);
    const t = this.decorationTypes();
    const where = this.placement(editor);
    if (where === 'inline' && editor) {
      editor.setDecorations(t.removed, range.isEmpty ? [] : [{ range }]);
      const text = it.newText === '' ? '' : flatten(it.newText);
      const at = new vscode.Range(range.end, range.end);
      editor.setDecorations(t.added, text ? [{ range: at, renderOptions: { after: { contentText: text } } }] : []);
      this.decorated.push(editor);
    } else {
      const n = it.range.start.line;
      const after = { contentText: `⇥ Tab: ${it.label}` };
      for (const ed of vscode.window.visibleTextEditors) {
        if (ed.document.uri.toString() !== it.uri) continue;
        // The hint goes after the line's text: the range ends at the line's end.
        const end = n < ed.document.lineCount ? ed.document.lineAt(n).text.length : 0;
        ed.setDecorations(t.far, [{ range: new vscode.Range(n, 0, n, end), renderOptions: { after } }]);
        this.decorated.push(ed);
      }
      const other = where === 'otherFile' ? ` in ${baseName(it.uri)}` : '';
      this.hint = vscode.window.setStatusBarMessage(`Tab: go to next edit (${it.label})${other}`);
    }
    this.setContext(true);
    if (!this.sentShown.has(it.id)) {
      if (this.sentShown.size > 1000) this.sentShown.clear();
      this.sentShown.add(it.id);
      this.feedback(it.id, 'shown');
    }
  }

  private clear(): void {
    this.shown = undefined;
    this.undecorate();
    this.setContext(false);
  }

  private feedback(id: string, action: NextEditFeedbackParams['action']): void {
    const api = this.deps.api();
    api?.nextEditFeedback({ id, action }).catch((e: unknown) => this.deps.log?.(`nextEditFeedback: ${String(e)}`));
  }

  // -- keys -----------------------------------------------------------------------------

  // Tab: at the suggestion, accept it; elsewhere, go to it. False when there is nothing
  // to take (hidden behind ghost text, or none).
  async jumpOrAccept(): Promise<boolean> {
    if (this.accepting) return true; // the last Tab's edit is still going in
    const s = this.shown;
    const editor = vscode.window.activeTextEditor;
    if (!s || s.hidden || this.ghostVisible(editor)) return false;
    const where = this.placement(editor);
    if (where === 'inline') return this.accept(s.item);
    const start = new vscode.Position(s.item.range.start.line, s.item.range.start.character);
    const range = toRange(s.item.range);
    if (where === 'far' && editor) {
      editor.selection = new vscode.Selection(start, start);
      editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      this.render();
    } else {
      // Where the file is already shown, there; else in the active group.
      const visible = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === s.item.uri);
      this.jumping = true;
      try {
        await vscode.window.showTextDocument(vscode.Uri.parse(s.item.uri), {
          selection: new vscode.Range(start, start),
          preview: false,
          viewColumn: visible?.viewColumn,
        });
      } finally {
        this.jumping = false;
      }
      if (this.shown === s) this.render();
    }
    return true;
  }

  private async accept(item: NextEditItem): Promise<boolean> {
    this.cancel();
    const edit = new vscode.WorkspaceEdit();
    edit.replace(vscode.Uri.parse(item.uri), toRange(item.range), item.newText);
    // The decorations go; Tab stays bound (accepting) until the next ask is answered.
    this.shown = undefined;
    this.undecorate();
    this.accepting = true;
    this.applying = item.uri;
    let ok = false;
    try {
      ok = await vscode.workspace.applyEdit(edit);
    } catch (e) {
      this.deps.log?.(`nextEdit apply: ${String(e)}`);
    } finally {
      this.applying = undefined;
    }
    if (!ok) {
      this.accepting = false;
      this.setContext(false);
      return false;
    }
    // The cursor after the accepted text (VS Code may leave it inside a replacement).
    const editor = vscode.window.activeTextEditor;
    if (editor && editor.document.uri.toString() === item.uri) {
      const lines = item.newText.split('\n');
      const last = lines[lines.length - 1]!;
      const end =
        lines.length === 1
          ? new vscode.Position(item.range.start.line, item.range.start.character + last.length)
          : new vscode.Position(item.range.start.line + lines.length - 1, last.length);
      editor.selection = new vscode.Selection(end, end);
    }
    this.feedback(item.id, 'accepted');
    this.retried = false;
    // The next place of the same rename, or whatever comes next; Tab is ours until then.
    void this.ask()
      .catch((e: unknown) => this.deps.log?.(`nextEdit: ${String(e)}`))
      .finally(() => {
        this.accepting = false;
        if (!this.shown) this.setContext(false);
      });
    return true;
  }

  // Esc: the suggestion (and the rest of its group, server side) goes away.
  dismiss(): boolean {
    const s = this.shown;
    this.cancel();
    if (!s) return false;
    this.feedback(s.item.id, 'dismissed');
    this.clear();
    return true;
  }

  dispose(): void {
    this.cancel();
    this.clear();
    if (this.types) {
      this.types.removed.dispose();
      this.types.added.dispose();
      this.types.far.dispose();
      this.types = undefined;
    }
  }
}
