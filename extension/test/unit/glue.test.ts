// The VS Code glue, against the mocked `vscode` module (test/vscode-mock.ts).
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { LatentApi } from '../../src/api';
import { contextFor, insertAtCursor } from '../../src/chat/view';
import { Commands, kFixInstruction, linesLabel, targetOf } from '../../src/commands';
import { Ctx } from '../../src/ctx';
import type { EditResult } from '../../src/protocol';
import { EditReview, kProposalScheme } from '../../src/review';
import { mock, Selection, TextDocument, Uri } from '../vscode-mock';

function openDoc(text: string, path = '/w/a.ts'): TextDocument {
  const d = new TextDocument(Uri.file(path), text);
  mock.documents.push(d);
  return d;
}

function editor(doc: TextDocument, sel: Selection) {
  const e = {
    document: doc,
    selection: sel,
    selections: [sel],
    edits: [] as [vscode.Range, string][],
    edit: (f: (b: { replace(r: vscode.Range, t: string): void }) => void) => {
      f({ replace: (r, t) => e.edits.push([r, t]) });
      return Promise.resolve(true);
    },
  };
  mock.activeTextEditor = e;
  return e;
}

function editResult(uri: string, newText: string): EditResult {
  return {
    text: newText,
    cachedTokens: 0,
    computedTokens: 0,
    generatedTokens: 1,
    edit: { changes: { [uri]: [{ range: { start: { line: 1, character: 0 }, end: { line: 2, character: 0 } }, newText }] } },
  };
}

describe('vscode glue', () => {
  beforeEach(() => mock.reset());

  it('targets the code action arguments, else the selection', () => {
    const doc = openDoc('a\nb\nc\n');
    const t = targetOf([doc.uri.toString(), { start: { line: 1, character: 0 }, end: { line: 2, character: 0 } }]);
    assert.equal(t?.document, doc as never);
    assert.equal(t?.range.start.line, 1);
    editor(doc, new Selection(0, 0, 0, 1));
    assert.equal(targetOf([])?.range.end.character, 1);
    assert.equal(targetOf(['file:///unknown', 'garbage'])?.range.end.character, 1);
  });

  it('builds the chat context from the toggles', () => {
    const doc = openDoc('x');
    editor(doc, new Selection(0, 0, 0, 1));
    assert.equal(contextFor(false, false), undefined);
    assert.deepEqual(contextFor(true, false), {
      textDocument: { uri: doc.uri.toString() },
      range: { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } },
    });
    assert.deepEqual(contextFor(false, true), { textDocument: { uri: doc.uri.toString() } });
    editor(doc, new Selection(0, 0, 0, 0));
    assert.equal(contextFor(true, false), undefined, 'no selection, no file: nothing');
  });

  it('inserts a code block at every cursor', async () => {
    const e = editor(openDoc('x'), new Selection(0, 1, 0, 1));
    await insertAtCursor('y()');
    assert.equal(e.edits.length, 1);
    assert.equal(e.edits[0]![1], 'y()');
  });

  it('shows an edit as a diff and applies it on Accept', async () => {
    const review = new EditReview();
    const doc = openDoc('int a;\nint b;\nint c;\n');
    assert.equal(await review.propose(doc as never, doc.version, editResult(doc.uri.toString(), 'long b;\n')), true);
    // Accept / Reject in the status bar while pending; no notification (VS Code cannot
    // take one back: it outlived an Accept from the diff's title bar).
    assert.deepEqual(mock.messages, []);
    const items = () => mock.statusItems.filter((i) => /latent\.(accept|reject)Edit/.test(i.command));
    assert.deepEqual(
      items().map((i) => [i.command, i.visible]),
      [
        ['latent.acceptEdit', true],
        ['latent.rejectEdit', true],
      ],
    );
    const diff = mock.executed.find((e) => e.command === 'vscode.diff')!;
    assert.ok(diff);
    const proposal = diff.args[1] as Uri;
    assert.equal(proposal.scheme, kProposalScheme);
    assert.equal(mock.contentProviders.get(kProposalScheme)!.provideTextDocumentContent(proposal), 'int a;\nlong b;\nint c;\n');
    assert.ok(mock.executed.some((e) => e.command === 'setContext' && e.args[1] === true));
    mock.tabs.push({ input: { modified: proposal } });
    assert.equal(await mock.commands.get('latent.acceptEdit')!(), true);
    assert.equal(mock.applied.length, 1);
    assert.equal((mock.applied[0] as any).edits[0].newText, 'long b;\n');
    assert.equal(mock.closedTabs.length, 1, 'the diff closes');
    assert.equal(review.reviewing, false);
    assert.ok(items().every((i) => !i.visible), 'the status bar items go with it');
    review.dispose();
  });

  it('rejects, and refuses an edit made stale by typing', async () => {
    const review = new EditReview();
    const doc = openDoc('int a;\nint b;\n');
    await review.propose(doc as never, doc.version, editResult(doc.uri.toString(), 'x\n'));
    await mock.commands.get('latent.rejectEdit')!();
    assert.equal(mock.applied.length, 0);
    await review.propose(doc as never, doc.version, editResult(doc.uri.toString(), 'x\n'));
    doc.setText('int a;\nint bb;\n');
    assert.equal(await review.accept(), false);
    assert.equal(mock.applied.length, 0);
    assert.ok(mock.messages.some((m) => /changed since/.test(m.text)));
    assert.equal(await review.propose(doc as never, doc.version, editResult('file:///other', 'x')), false);
    review.dispose();
  });

  it('Fix This sends the preset instruction and opens the review', async () => {
    const doc = openDoc('int f() {\n  return 1 / 0;\n}\n');
    editor(doc, new Selection(1, 0, 2, 0));
    const calls: unknown[][] = [];
    const ctx = {
      state: 'running',
      api: {
        edit: (...a: unknown[]) => {
          calls.push(a);
          return Promise.resolve({ kind: 'ok', value: editResult(doc.uri.toString(), '  return 0;\n') });
        },
      } as unknown as LatentApi,
      addMiddleware: () => undefined,
      output: { show: () => undefined },
    } as unknown as Ctx;
    const review = new EditReview();
    const cmds = new Commands(ctx, {} as never, review);
    cmds.register();
    await mock.commands.get('latent.fixThis')!();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]![0], doc.uri.toString());
    assert.equal(calls[0]![2], kFixInstruction);
    assert.equal(review.reviewing, true);
    review.dispose();
  });

  it('names the lines of a selection as the user sees them', () => {
    const at = (l0: number, c0: number, l1: number, c1: number) => ({ start: { line: l0, character: c0 }, end: { line: l1, character: c1 } });
    assert.equal(linesLabel(at(4, 0, 10, 0)), 'lines 5–10', 'ends at column 0 of line 11: not taken');
    assert.equal(linesLabel(at(4, 0, 9, 23)), 'lines 5–10');
    assert.equal(linesLabel(at(4, 2, 4, 9)), 'line 5');
    assert.equal(linesLabel(at(4, 0, 5, 0)), 'line 5');
    assert.equal(linesLabel(at(4, 3, 4, 3)), 'line 5');
  });

  it('Show Status opens a read-only report that refreshes in place, not an Untitled document', async () => {
    let n = 0;
    const ctx = {
      state: 'running',
      api: { status: () => Promise.resolve({ kind: 'ok', value: { backend: 'none', calls: ++n } }) },
      addMiddleware: () => undefined,
    } as unknown as Ctx;
    const subs = new Commands(ctx, {} as never, new EditReview()).register();
    await mock.commands.get('latent.showStatus')!();
    await mock.commands.get('latent.showStatus')!();
    assert.deepEqual(mock.untitled, []);
    assert.equal(mock.shown.length, 2);
    const uri = (mock.shown[1]!.uri as unknown as { uri: Uri }).uri;
    assert.equal(uri.scheme, 'latent-status');
    const report = JSON.parse(mock.contentProviders.get('latent-status')!.provideTextDocumentContent(uri)) as Record<string, unknown>;
    assert.deepEqual(report, { server: 'running', backend: 'none', calls: 2 });
    for (const s of subs) s.dispose();
  });

  it('Edit Selection asks for the instruction; nothing happens when the box is dismissed', async () => {
    const doc = openDoc('a\nb\n');
    editor(doc, new Selection(0, 0, 1, 0));
    let called = 0;
    const ctx = {
      state: 'running',
      api: { edit: () => (called++, Promise.resolve({ kind: 'cancelled' })) },
      addMiddleware: () => undefined,
    } as unknown as Ctx;
    new Commands(ctx, {} as never, new EditReview()).register();
    mock.answers.push(undefined);
    await mock.commands.get('latent.editSelection')!();
    assert.equal(called, 0);
    assert.equal(mock.messages[0]!.level, 'input');
    mock.answers.push('use const');
    await mock.commands.get('latent.editSelection')!();
    assert.equal(called, 1);
  });

  it('Run Prompt… picks a prompt and runs it in the chat on the selection, else the file', async () => {
    const doc = openDoc('a\nb\nc\n');
    editor(doc, new Selection(1, 0, 2, 0));
    const sent: unknown[][] = [];
    const ctx = {
      state: 'running',
      api: {
        prompts: () =>
          Promise.resolve({
            kind: 'ok',
            value: {
              prompts: [
                { name: 'explain', description: 'Explain the code', context: ['selection'], source: 'builtin' },
                { name: 'team-review', description: 'Our checklist', context: ['file'], source: 'workspace', uri: 'file:///w/.latent/prompts/r.md' },
              ],
            },
          }),
      } as unknown as LatentApi,
      addMiddleware: () => undefined,
    } as unknown as Ctx;
    const chat = { send: (...a: unknown[]) => (sent.push(a), Promise.resolve()) };
    new Commands(ctx, chat as never, {} as never).register();
    mock.answers.push('team-review');
    await mock.commands.get('latent.runPrompt')!();
    const pick = mock.messages.find((m) => m.level === 'pick')!;
    assert.deepEqual(pick.items, ['explain', 'team-review']);
    assert.deepEqual(sent[0], [
      '',
      { textDocument: { uri: doc.uri.toString() }, range: { start: { line: 1, character: 0 }, end: { line: 2, character: 0 } } },
      { prompt: 'team-review' },
    ]);
    assert.ok(mock.executed.some((e) => e.command === 'latent.chat.focus'));
    editor(doc, new Selection(0, 0, 0, 0));
    mock.answers.push('explain');
    await mock.commands.get('latent.runPrompt')!();
    assert.deepEqual(sent[1]![1], { textDocument: { uri: doc.uri.toString() } }, 'no selection: the file');
    mock.answers.push(undefined);
    await mock.commands.get('latent.runPrompt')!();
    assert.equal(sent.length, 2, 'dismissed: nothing runs');
  });

  it('routes the server code actions to the extension\'s own UI', async () => {
    let middleware: any;
    const ctx = { addMiddleware: (m: unknown) => (middleware = m) } as unknown as Ctx;
    const cmds = new Commands(ctx, {} as never, {} as never);
    cmds.register();
    let explained: unknown;
    cmds.explain = (a: unknown[]) => ((explained = a), Promise.resolve());
    const passed: string[] = [];
    await middleware.executeCommand('latent.explain', ['u', 'r'], () => undefined);
    await middleware.executeCommand('other.command', [], (c: string) => passed.push(c));
    assert.deepEqual(explained, ['u', 'r']);
    assert.deepEqual(passed, ['other.command']);
  });

  it('a missing binary fails with a clear message, not a crash', async () => {
    mock.config['latent.path'] = '/definitely/not/here/latent';
    const ctx = new Ctx({ extensionPath: '/ext', secrets: { get: () => Promise.resolve(undefined) } } as never);
    const states: string[] = [];
    ctx.onDidChangeState((s) => states.push(s));
    await ctx.start();
    assert.deepEqual(states, ['failed']);
    assert.equal(ctx.client, undefined);
    assert.ok(mock.messages.some((m) => m.level === 'error' && /\/definitely\/not\/here\/latent/.test(m.text)));
  });
});
