// Next edit suggestions in the mocked editor: when it asks, what it shows, Tab / Esc, and
// when it keeps out of the way. Timers are fake (the test moves the clock) and the server
// answers when the test says, so no sleep decides the order of anything.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CancellationToken } from 'vscode-jsonrpc';
import { applyTextEdits, type Outcome } from '../../src/api';
import { kContextKey, NextEditController, type NextEditSettings, type Timers } from '../../src/next_edit';
import type { NextEditFeedbackParams, NextEditItem, NextEditParams, NextEditResult, StatusResult } from '../../src/protocol';
import { statusView } from '../../src/status';
import { mock, Selection, TextDocument, Uri, WorkspaceEdit } from '../vscode-mock';

class FakeTimers implements Timers {
  now = 0;
  private next = 1;
  private pending = new Map<number, { at: number; f: () => void }>();
  set(f: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.now + ms, f });
    return id;
  }
  clear(h: unknown): void {
    this.pending.delete(h as number);
  }
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.pending.entries()].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].f();
    }
    this.now = until;
  }
}

interface Asked {
  params: NextEditParams;
  token: CancellationToken;
  answer(r: NextEditResult): void;
}

class FakeApi {
  asked: Asked[] = [];
  feedback: NextEditFeedbackParams[] = [];
  nextEdit(params: NextEditParams, token?: CancellationToken): Promise<Outcome<NextEditResult>> {
    return new Promise((resolve) => {
      this.asked.push({ params, token: token!, answer: (value) => resolve({ kind: 'ok', value }) });
    });
  }
  nextEditFeedback(params: NextEditFeedbackParams): Promise<void> {
    this.feedback.push(params);
    return Promise.resolve();
  }
}

// Lets the promise chains run (answers, applyEdit); no timer is involved.
const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

interface FakeEditor {
  document: TextDocument;
  selection: Selection;
  decorations: Map<unknown, unknown[]>;
  revealed: unknown[];
  setDecorations(t: unknown, d: unknown[]): void;
  revealRange(r: unknown): void;
}

function makeEditor(doc: TextDocument, line: number, character = 0): FakeEditor {
  const ed: FakeEditor = {
    document: doc,
    selection: new Selection(line, character, line, character),
    decorations: new Map(),
    revealed: [],
    setDecorations: (t, d) => void ed.decorations.set(t, d),
    revealRange: (r) => void ed.revealed.push(r),
  };
  return ed;
}

const text = [
  'function total(items) {',
  '  let sum = 0;',
  '  for (const x of items) sum += x;',
  '  return sum;',
  '}',
  '',
  ...Array.from({ length: 40 }, (_, i) => `// line ${i + 6}`),
];

describe('next edit suggestions', () => {
  let timers: FakeTimers;
  let api: FakeApi;
  let settings: NextEditSettings;
  let ctl: NextEditController;
  let subs: { dispose(): unknown }[];
  let doc: TextDocument;
  let editor: FakeEditor;
  const uri = () => doc.uri.toString();
  const currentId = (): string | undefined => ctl.current?.id;

  const context = (): boolean | undefined => {
    const set = mock.executed.filter((e) => e.command === 'setContext' && e.args[0] === kContextKey);
    return set.length ? (set[set.length - 1]!.args[1] as boolean) : undefined;
  };
  // Every decoration now on the editor, by the option that tells them apart.
  const decorations = () => {
    const out: { kind: string; line: number; end?: number; text?: string }[] = [];
    for (const t of mock.decorationTypes) {
      const o = t.options as { textDecoration?: string; isWholeLine?: boolean };
      const kind = o.textDecoration ? 'removed' : o.isWholeLine ? 'far' : 'added';
      type Shown = {
        range: { start: { line: number }; end: { character: number } };
        renderOptions?: { after?: { contentText?: string } };
      };
      for (const d of (editor.decorations.get(t) ?? []) as Shown[]) {
        const after = d.renderOptions?.after?.contentText;
        // A far mark spans its line, so its hint shows after the line's text.
        const span = kind === 'far' ? { end: d.range.end.character } : {};
        out.push({ kind, line: d.range.start.line, ...span, ...(after !== undefined ? { text: after } : {}) });
      }
    }
    return out;
  };
  const hints = () => mock.messages.filter((m) => m.level === 'status').map((m) => m.text);
  // The user types at the cursor (any change will do: the document's version moves on).
  const type = (d = doc) => {
    d.setText(d.getText() + ' ');
    mock.documentChanged.fire({ document: d, contentChanges: [{ text: ' ' }] });
  };
  const moveTo = (line: number, character = 0) => {
    editor.selection = new Selection(line, character, line, character);
    mock.selectionChanged.fire({ textEditor: editor, selections: [editor.selection] });
  };
  const item = (over: Partial<NextEditItem> = {}): NextEditItem => ({
    id: 'rename:sum:total:1',
    uri: uri(),
    range: { start: { line: 1, character: 6 }, end: { line: 1, character: 9 } },
    newText: 'acc',
    reason: 'index',
    kind: 'rename',
    label: 'Rename sum → acc',
    ...over,
  });
  // Types, lets the pause pass, and answers the request with `edits`.
  const offer = async (...edits: NextEditItem[]) => {
    type();
    timers.advance(settings.debounceMs);
    const a = api.asked[api.asked.length - 1]!;
    a.answer({ version: a.params.textDocument.version, edits });
    await flush();
  };

  beforeEach(() => {
    mock.reset();
    timers = new FakeTimers();
    api = new FakeApi();
    settings = { enabled: true, debounceMs: 300, model: true };
    ctl = new NextEditController({ api: () => api, settings: () => settings, timers });
    subs = ctl.activate();
    doc = new TextDocument(Uri.file('/w/a.ts'), text.join('\n'));
    editor = makeEditor(doc, 1, 9);
    mock.activeTextEditor = editor as never;
    // The mocked applyEdit applies the edit to the document and fires its change event,
    // inside applyEdit as VS Code does.
    mock.onApply = (e: WorkspaceEdit) => {
      for (const x of e.edits) {
        const d = [doc, ...mock.documents].find((y) => y.uri.toString() === x.uri.toString())!;
        d.setText(applyTextEdits(d.getText(), [{ range: x.range, newText: x.newText }]));
        mock.documentChanged.fire({ document: d, contentChanges: [{ text: x.newText }] });
      }
    };
  });

  afterEach(() => subs.forEach((d) => d.dispose()));

  it('asks after the pause, with the document version and the cursor', () => {
    type();
    timers.advance(299);
    assert.equal(api.asked.length, 0, 'not before the pause');
    type(); // typing again restarts the pause
    timers.advance(299);
    assert.equal(api.asked.length, 0);
    timers.advance(1);
    assert.equal(api.asked.length, 1);
    assert.deepEqual(api.asked[0]!.params, {
      textDocument: { uri: 'file:///w/a.ts', version: doc.version },
      position: { line: 1, character: 9 },
      model: true,
    });
    assert.equal(doc.version, 3);
    // With a selection it does not ask.
    editor.selection = new Selection(1, 2, 1, 9);
    type();
    timers.advance(1000);
    assert.equal(api.asked.length, 1);
  });

  it('cancels the request in flight when the user types again, and drops stale answers', async () => {
    type();
    timers.advance(300);
    const first = api.asked[0]!;
    type();
    assert.ok(first.token.isCancellationRequested, 'typing cancels the request in flight');
    first.answer({ version: first.params.textDocument.version, edits: [item()] });
    await flush();
    assert.equal(currentId(), undefined, 'the cancelled answer is dropped');
    timers.advance(300);
    const second = api.asked[1]!;
    assert.equal(second.params.textDocument.version, doc.version);
    // An answer computed on another version than the document's: dropped.
    second.answer({ version: doc.version - 1, edits: [item()] });
    await flush();
    assert.equal(currentId(), undefined);
    assert.equal(context(), undefined, 'the context key never went on');
    assert.deepEqual(decorations(), []);
    assert.deepEqual(api.feedback, []);
    // The server had an older copy while the document stayed put: asked once more, after
    // the pause, and that answer is shown.
    timers.advance(300);
    assert.equal(api.asked.length, 3);
    api.asked[2]!.answer({ version: doc.version, edits: [item()] });
    await flush();
    assert.equal(currentId(), 'rename:sum:total:1');
  });

  it('shows an edit at the cursor as a diff in place, and sends "shown" once', async () => {
    await offer(item(), item({ id: 'second' }));
    assert.equal(ctl.placement(), 'inline');
    assert.deepEqual(decorations(), [
      { kind: 'removed', line: 1 },
      { kind: 'added', line: 1, text: 'acc' },
    ]);
    assert.equal(context(), true);
    assert.deepEqual(hints(), [], 'no hint when it is in front of the user');
    assert.deepEqual(api.feedback, [{ id: 'rename:sum:total:1', action: 'shown' }]);
    moveTo(1, 3); // re-rendered, still one "shown"
    assert.deepEqual(api.feedback, [{ id: 'rename:sum:total:1', action: 'shown' }]);
  });

  it('shows an edit far away as a marked line and a hint; Tab jumps, Tab accepts, then asks again', async () => {
    moveTo(30);
    await offer(item({ range: { start: { line: 3, character: 9 }, end: { line: 3, character: 12 } } }));
    assert.equal(ctl.placement(), 'far');
    assert.deepEqual(decorations(), [{ kind: 'far', line: 3, end: 13, text: '⇥ Tab: Rename sum → acc' }]);
    assert.deepEqual(hints(), ['Tab: go to next edit (Rename sum → acc)']);
    assert.equal(context(), true);

    // First Tab: the cursor goes to the edit, which now shows in place; nothing applied.
    assert.equal(await mock.commands.get('latent.nextEdit.jumpOrAccept')!(), true);
    assert.deepEqual({ ...editor.selection.active }, { line: 3, character: 9 });
    assert.equal(editor.revealed.length, 1);
    assert.equal(mock.applied.length, 0);
    assert.deepEqual(decorations(), [
      { kind: 'removed', line: 3 },
      { kind: 'added', line: 3, text: 'acc' },
    ]);

    // Second Tab: applied as one WorkspaceEdit, "accepted", and the next one asked for at
    // once, on the new version.
    const before = api.asked.length;
    assert.equal(await mock.commands.get('latent.nextEdit.jumpOrAccept')!(), true);
    await flush();
    assert.equal(mock.applied.length, 1);
    assert.deepEqual(
      mock.applied[0]!.edits.map((e) => ({
        uri: e.uri.toString(),
        line: e.range.start.line,
        from: e.range.start.character,
        to: e.range.end.character,
        newText: e.newText,
      })),
      [{ uri: 'file:///w/a.ts', line: 3, from: 9, to: 12, newText: 'acc' }],
    );
    assert.equal(doc.getText().split('\n')[3], '  return acc;');
    assert.deepEqual(api.feedback.map((f) => f.action), ['shown', 'accepted']);
    assert.equal(api.asked.length, before + 1, 'asks for the next one without waiting for a pause');
    assert.equal(api.asked[before]!.params.textDocument.version, doc.version);
    assert.equal(currentId(), undefined);
    assert.deepEqual(decorations(), []);
    // The cursor is after the accepted text, and until the next answer Tab stays ours: a
    // quick second Tab is swallowed, never typed into the code.
    assert.deepEqual({ ...editor.selection.active }, { line: 3, character: 12 });
    assert.equal(context(), true);
    assert.equal(await mock.commands.get('latent.nextEdit.jumpOrAccept')!(), true);
    assert.equal(mock.applied.length, 1);
    api.asked[before]!.answer({ version: doc.version, edits: [] });
    await flush();
    assert.equal(context(), false);
  });

  it('Tab on an edit in another file opens it there', async () => {
    const other = 'file:///w/b.ts';
    const range = { start: { line: 7, character: 2 }, end: { line: 7, character: 5 } };
    await offer(item({ id: 'b', uri: other, range }));
    assert.equal(ctl.placement(), 'otherFile');
    assert.deepEqual(hints(), ['Tab: go to next edit (Rename sum → acc) in b.ts']);
    assert.equal(await mock.commands.get('latent.nextEdit.jumpOrAccept')!(), true);
    assert.equal(mock.shown.length, 1);
    assert.equal(mock.shown[0]!.uri.toString(), other);
    const { selection } = mock.shown[0]!.options as { selection: { start: object } };
    assert.deepEqual({ ...selection.start }, { line: 7, character: 2 });
    assert.equal(mock.applied.length, 0);
    // VS Code reports no active editor for a moment while it switches (seen in the real
    // editor): the suggestion must survive that.
    mock.activeTextEditor = undefined;
    mock.activeEditorChanged.fire(undefined);
    assert.equal(currentId(), 'b');
    assert.equal(context(), true);
    // The editor changes to that file: the suggestion stays, now in place.
    const b = new TextDocument(Uri.parse(other), 'x\n'.repeat(20));
    editor = makeEditor(b, 7, 2);
    mock.activeTextEditor = editor as never;
    mock.activeEditorChanged.fire(editor);
    assert.equal(currentId(), 'b');
    assert.equal(ctl.placement(), 'inline');
    // Changing to an unrelated editor clears it.
    editor = makeEditor(new TextDocument(Uri.file('/w/c.ts'), ''), 0);
    mock.activeTextEditor = editor as never;
    mock.activeEditorChanged.fire(editor);
    assert.equal(currentId(), undefined);
    assert.equal(context(), false);
  });

  it('Esc dismisses it with feedback and clears the decorations', async () => {
    await offer(item());
    assert.equal(await mock.commands.get('latent.nextEdit.dismiss')!(), true);
    assert.deepEqual(api.feedback, [
      { id: 'rename:sum:total:1', action: 'shown' },
      { id: 'rename:sum:total:1', action: 'dismissed' },
    ]);
    assert.equal(currentId(), undefined);
    assert.equal(context(), false);
    assert.deepEqual(decorations(), []);
    assert.equal(mock.applied.length, 0);
    assert.equal(await mock.commands.get('latent.nextEdit.jumpOrAccept')!(), false, 'Tab has nothing left to take');
  });

  it('an edit by the user clears the suggestion and asks again', async () => {
    await offer(item());
    const n = api.asked.length;
    type();
    assert.equal(currentId(), undefined);
    assert.equal(context(), false);
    assert.deepEqual(decorations(), []);
    timers.advance(300);
    assert.equal(api.asked.length, n + 1);
    // One in another file goes too when the user types here, or when that file changes.
    api.asked[n]!.answer({ version: doc.version, edits: [item({ uri: 'file:///w/b.ts' })] });
    await flush();
    assert.equal(currentId(), 'rename:sum:total:1');
    type();
    assert.equal(currentId(), undefined);
    const b = new TextDocument(Uri.parse('file:///w/b.ts'), 'x\n');
    await offer(item({ uri: 'file:///w/b.ts' }));
    assert.equal(context(), true);
    const asked = api.asked.length;
    type(b); // not the active editor's document: nothing asked, the suggestion's range is gone
    assert.equal(currentId(), undefined);
    assert.equal(context(), false);
    timers.advance(1000);
    assert.equal(api.asked.length, asked);
  });

  it('asks nothing when the setting is off, and turning it off takes a suggestion away', async () => {
    await offer(item());
    assert.equal(context(), true);
    settings = { ...settings, enabled: false };
    ctl.settingsChanged();
    assert.equal(currentId(), undefined);
    assert.equal(context(), false);
    const n = api.asked.length;
    type();
    timers.advance(10000);
    void ctl.ask();
    await flush();
    assert.equal(api.asked.length, n);
  });

  it('gives way to ghost text at the cursor: hidden, context key off, Tab not taken', async () => {
    await offer(item());
    assert.equal(context(), true);
    ctl.ghostShown(doc as never, editor.selection.active as never);
    assert.equal(context(), false, 'Tab is the inline completion’s');
    assert.deepEqual(decorations(), []);
    assert.equal(await mock.commands.get('latent.nextEdit.jumpOrAccept')!(), false);
    assert.equal(mock.applied.length, 0);
    // The cursor moves away: the ghost text is gone, the suggestion is back.
    moveTo(1, 2);
    assert.equal(context(), true);
    assert.equal(decorations().length, 2);
    // An answer that arrives while ghost text is shown is not shown either.
    type();
    ctl.ghostShown(doc as never, editor.selection.active as never);
    timers.advance(300);
    const a = api.asked[api.asked.length - 1]!;
    a.answer({ version: doc.version, edits: [item({ id: 'later' })] });
    await flush();
    assert.equal(context(), false);
    assert.ok(!api.feedback.some((f) => f.id === 'later'), 'not "shown" while hidden');
  });

  it('binds Tab and Escape only while a suggestion shows and no ghost text or suggest widget is', () => {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8'));
    const keys = pkg.contributes.keybindings as { command: string; key: string; when: string }[];
    const when = 'latent.nextEditVisible && editorTextFocus && !inlineSuggestionVisible && !suggestWidgetVisible';
    assert.deepEqual(
      keys.filter((k) => k.command.startsWith('latent.nextEdit.')).map((k) => [k.command, k.key, k.when]),
      [
        ['latent.nextEdit.jumpOrAccept', 'tab', when],
        ['latent.nextEdit.dismiss', 'escape', when],
      ],
    );
    assert.equal(kContextKey, 'latent.nextEditVisible');
  });

  it("the status bar's tooltip has the server's next edit counters", () => {
    const status: StatusResult = {
      backend: 'remote',
      settings: {},
      completions: 0,
      suggestionCacheHits: 0,
      lastCompletionMs: 0,
      lastCachedTokens: 0,
      lastComputedTokens: 0,
      cache: {},
      documents: 1,
      index: [],
      nextEdit: { shown: 7, accepted: 5, dismissed: 1, index: 6, model: 1 },
    };
    const v = statusView({ server: 'running', completionEnabled: true, status });
    assert.match(v.tooltip, /Next edits: 7 shown, 5 accepted, 1 dismissed \(6 from the index, 1 from the model\)/);
    const none = statusView({ server: 'running', completionEnabled: true, status: { ...status, nextEdit: undefined } });
    assert.doesNotMatch(none.tooltip, /Next edits/);
  });
});
