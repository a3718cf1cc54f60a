// The review of agent mode's proposals (src/chat/proposal.ts) against the vscode mock:
// the diff shown, accept applying exactly one file, a changed file refused, accept all as
// one edit, reject writing nothing.
import * as assert from 'node:assert/strict';
import { kProposedScheme, lineDelta, ProposalReview } from '../../src/chat/proposal';
import type { Proposal } from '../../src/protocol';
import type { FileState } from '../../src/shared/messages';
import { mock, TextDocument, Uri, WorkspaceEdit } from '../vscode-mock';

const a = { uri: 'file:///ws/src/a.ts', path: 'src/a.ts', created: false, oldText: 'one\ntwo\nthree\n', newText: 'one\n2\nthree\nfour\n' };
const b = { uri: 'file:///ws/src/b.ts', path: 'src/b.ts', created: false, oldText: 'x\n', newText: 'y\n' };
const c = { uri: 'file:///ws/src/new.ts', path: 'src/new.ts', created: true, oldText: '', newText: 'export const n = 1;\n' };

function proposal(...files: (typeof a)[]): Proposal {
  return {
    edit: {
      documentChanges: [
        ...files.filter((f) => f.created).map((f) => ({ kind: 'create' as const, uri: f.uri })),
        ...files.map((f) => ({ textDocument: { uri: f.uri, version: null }, edits: [] })),
      ],
    },
    files,
  };
}

describe('proposal review', () => {
  let states: { id: number; uri: string; state: FileState; note?: string }[];
  let review: ProposalReview;

  beforeEach(() => {
    mock.reset();
    states = [];
    review = new ProposalReview((id, uri, state, note) => states.push(note ? { id, uri, state, note } : { id, uri, state }));
    // a.ts is open in the editor as the agent read it; b.ts is on disk only.
    mock.documents.push(new TextDocument(Uri.parse(a.uri), a.oldText));
    mock.files.set(b.uri, b.oldText);
  });

  afterEach(() => review.dispose());

  it('counts the lines each file adds and removes', () => {
    assert.deepEqual(lineDelta(a.oldText, a.newText), { added: 2, removed: 1 });
    assert.deepEqual(lineDelta('', 'a\nb\n'), { added: 2, removed: 0 });
    assert.deepEqual(lineDelta('a\nb\n', 'a\nb\n'), { added: 0, removed: 0 });
    assert.deepEqual(lineDelta('a\r\nb\r\n', 'a\nc\n'), { added: 1, removed: 1 });
    const big = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n');
    const moved = big.split('\n').reverse().join('\n');
    const d = lineDelta(big, moved); // past the LCS limit: a multiset count
    assert.equal(d.added, d.removed);
  });

  it('lists the files with their counts, all pending', () => {
    const v = review.add(proposal(a, c))!;
    assert.deepEqual(v.files, [
      { uri: a.uri, path: 'src/a.ts', created: false, added: 2, removed: 1, state: 'pending' },
      { uri: c.uri, path: 'src/new.ts', created: true, added: 1, removed: 0, state: 'pending' },
    ]);
    assert.equal(review.add({ edit: {}, files: [] }), undefined, 'nothing to review');
    assert.equal(review.add(proposal(b))!.id, v.id + 1);
  });

  it('shows a diff of the file against the proposed text, and of an empty document for a new file', async () => {
    const { id } = review.add(proposal(a, c))!;
    await review.viewDiff(id, a.uri);
    await review.viewDiff(id, c.uri);
    const diffs = mock.executed.filter((e) => e.command === 'vscode.diff');
    assert.equal(diffs.length, 2);
    const [left, right, title] = diffs[0]!.args as [Uri, Uri, string];
    assert.equal(left.toString(), a.uri);
    assert.equal(right.scheme, kProposedScheme);
    assert.equal(right.path, '/src/a.ts', 'the path keeps its extension, for the language');
    assert.match(title, /src\/a\.ts/);
    const provider = mock.contentProviders.get(kProposedScheme)!;
    assert.equal(provider.provideTextDocumentContent(right), a.newText);
    const [left2, right2] = diffs[1]!.args as [Uri, Uri];
    assert.equal(left2.scheme, kProposedScheme);
    assert.equal(provider.provideTextDocumentContent(left2), '');
    assert.equal(provider.provideTextDocumentContent(right2), c.newText);
    assert.deepEqual(mock.applied, [], 'viewing writes nothing');
  });

  it('accepting a file applies that file only, as a whole-file replacement', async () => {
    const { id } = review.add(proposal(a, b))!;
    assert.equal(await review.accept(id, a.uri), true);
    assert.equal(mock.applied.length, 1);
    const e = mock.applied[0]!;
    assert.equal(e.edits.length, 1);
    assert.equal(e.edits[0]!.uri.toString(), a.uri);
    assert.equal(e.edits[0]!.newText, a.newText);
    assert.deepEqual([e.edits[0]!.range.start, e.edits[0]!.range.end].map((p) => [p.line, p.character]), [
      [0, 0],
      [3, 0],
    ]);
    assert.deepEqual(states, [{ id, uri: a.uri, state: 'accepted' }]);
    assert.equal(await review.accept(id, a.uri), false, 'once only');
    assert.equal(mock.applied.length, 1);
  });

  it('refuses to accept a file that changed since the proposal, and says so', async () => {
    const { id } = review.add(proposal(a, b))!;
    mock.documents[0]!.setText('one\ntwo\nthree\nedited by the user\n');
    mock.files.set(b.uri, 'x\ny\n');
    assert.equal(await review.accept(id, a.uri), false);
    assert.equal(await review.accept(id, b.uri), false);
    assert.deepEqual(mock.applied, [], 'nothing written');
    assert.deepEqual(
      states.map((s) => [s.uri, s.state]),
      [
        [a.uri, 'changed'],
        [b.uri, 'changed'],
      ],
    );
    assert.match(states[0]!.note!, /src\/a\.ts changed since the proposal; not applied/);
    assert.ok(mock.messages.some((m) => m.level === 'warning' && /changed since the proposal/.test(m.text)));
  });

  it('creates a new file, but not over one that appeared meanwhile', async () => {
    const { id } = review.add(proposal(c))!;
    assert.equal(await review.accept(id, c.uri), true);
    const e = mock.applied[0]!;
    assert.deepEqual(e.created.map((x) => x.uri.toString()), [c.uri]);
    assert.equal(e.edits[0]!.newText, c.newText);
    const again = review.add(proposal(c))!;
    mock.files.set(c.uri, 'someone else wrote this\n');
    assert.equal(await review.accept(again.id, c.uri), false);
    assert.equal(mock.applied.length, 1);
    assert.match(states[states.length - 1]!.note!, /was created since the proposal/);
  });

  it('accept all applies every unchanged pending file as one edit', async () => {
    const { id } = review.add(proposal(a, b, c))!;
    review.reject(id, b.uri);
    assert.equal(await review.acceptAll(id), true);
    assert.equal(mock.applied.length, 1, 'one edit: one undo');
    const e: WorkspaceEdit = mock.applied[0]!;
    assert.deepEqual(e.edits.map((x) => x.uri.toString()), [a.uri, c.uri]);
    assert.deepEqual(e.created.map((x) => x.uri.toString()), [c.uri]);
    assert.deepEqual(
      states.map((s) => [s.uri, s.state]),
      [
        [b.uri, 'rejected'],
        [a.uri, 'accepted'],
        [c.uri, 'accepted'],
      ],
    );
    assert.equal(await review.acceptAll(id), false, 'nothing left');
    assert.equal(mock.applied.length, 1);
  });

  it('accept all skips a changed file and applies the rest', async () => {
    const { id } = review.add(proposal(a, b))!;
    mock.files.set(b.uri, 'changed\n');
    assert.equal(await review.acceptAll(id), false);
    assert.deepEqual(mock.applied[0]!.edits.map((x) => x.uri.toString()), [a.uri]);
    assert.deepEqual(states.map((s) => s.state).sort(), ['accepted', 'changed']);
  });

  it('reject and reject all write nothing', async () => {
    const { id } = review.add(proposal(a, b, c))!;
    review.reject(id, a.uri);
    review.rejectAll(id);
    assert.deepEqual(mock.applied, []);
    assert.deepEqual(
      states.map((s) => [s.uri, s.state]),
      [
        [a.uri, 'rejected'],
        [b.uri, 'rejected'],
        [c.uri, 'rejected'],
      ],
    );
    assert.equal(await review.accept(id, a.uri), false, 'a rejected file stays rejected');
    assert.deepEqual(mock.applied, []);
  });

  it('says so when VS Code does not apply the edit, and for a proposal it no longer has', async () => {
    const { id } = review.add(proposal(a))!;
    mock.applyResult = false;
    assert.equal(await review.accept(id, a.uri), false);
    assert.deepEqual(states[0], { id, uri: a.uri, state: 'failed', note: 'VS Code did not apply the edit.' });
    await review.accept(999, a.uri);
    assert.equal(states[1]!.state, 'failed');
    assert.match(states[1]!.note!, /no longer available/);
  });
});
