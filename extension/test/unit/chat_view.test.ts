// The chat view's routing of the webview's messages (src/chat/view.ts) with the vscode
// mock: sources open only when the conversation showed them, review buttons reach the
// review, '@' queries and '/' lists reach the server and come back.
import * as assert from 'node:assert/strict';
import type { LatentApi } from '../../src/api';
import { ProposalReview } from '../../src/chat/proposal';
import { ChatSession } from '../../src/chat/session';
import { ChatView } from '../../src/chat/view';
import type { HostMessage } from '../../src/shared/messages';
import { EventEmitter, mock, TextDocument, Uri } from '../vscode-mock';

const file = { uri: 'file:///ws/src/a.ts', path: 'src/a.ts', created: false, oldText: 'a\n', newText: 'b\n' };
const range = { start: { line: 2, character: 0 }, end: { line: 4, character: 0 } };

function fakeApi(calls: { method: string; params: unknown }[]): LatentApi {
  return {
    chat: async (_m: unknown, _c: unknown, onText: (t: string) => void, _t: unknown, extra: any) => {
      calls.push({ method: 'chat', params: extra });
      extra.onSources?.([{ uri: file.uri, path: file.path, range, why: 'read by the agent' }]);
      onText('done');
      return { kind: 'ok', value: { text: 'done', cachedTokens: 0, computedTokens: 0, generatedTokens: 0, proposal: { edit: {}, files: [file] } } };
    },
    mentions: async (params: unknown) => {
      calls.push({ method: 'mentions', params });
      return { kind: 'ok', value: { items: [{ label: 'src/a.ts', detail: '', uri: file.uri }, { label: 7, detail: '', uri: '' }] } };
    },
    prompts: async () => ({
      kind: 'ok',
      value: { prompts: [{ name: 'explain', description: 'Explain the code', context: ['selection'], source: 'builtin' }, { name: '../bad', description: '' }] },
    }),
  } as unknown as LatentApi;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

describe('chat view message routing', () => {
  let posted: HostMessage[];
  let calls: { method: string; params: unknown }[];
  let incoming: EventEmitter<unknown>;
  let review: ProposalReview;

  beforeEach(() => {
    mock.reset();
    posted = [];
    calls = [];
    incoming = new EventEmitter<unknown>();
    review = new ProposalReview((id, uri, state, note) => void session.fileState(id, uri, state, note));
    const session: ChatSession = new ChatSession(() => fakeApi(calls), { get: () => [], update: () => undefined }, review);
    const log = { warn: (s: string) => mock.messages.push({ level: 'log', text: s, items: [] }) };
    const view = new ChatView(Uri.file('/ext') as never, session, log as never, review, () => fakeApi(calls));
    const webview = {
      options: {},
      html: '',
      cspSource: 'vscode-webview://test',
      asWebviewUri: (u: Uri) => u,
      postMessage: (m: HostMessage) => (posted.push(m), Promise.resolve(true)),
      onDidReceiveMessage: incoming.event,
    };
    view.resolveWebviewView({ webview, onDidDispose: () => undefined } as never);
    incoming.fire({ type: 'ready' });
  });

  afterEach(() => review.dispose());

  it('sends mode, mentions and prompt with the question', async () => {
    incoming.fire({ type: 'mode', mode: 'agent' });
    incoming.fire({ type: 'send', text: 'fix it', includeSelection: false, includeFile: false, mentions: [{ kind: 'symbol', name: 'parse' }], prompt: 'fix' });
    await settle();
    const { onSources, onStep, conversationId, ...params } = calls[0]!.params as any;
    assert.equal(calls[0]!.method, 'chat');
    assert.deepEqual(params, { mode: 'agent', mentions: [{ kind: 'symbol', name: 'parse' }], prompt: 'fix' });
    assert.equal(typeof onSources, 'function');
    assert.equal(typeof onStep, 'function');
    assert.equal(typeof conversationId, 'string');
    assert.ok(posted.some((m) => m.type === 'proposal'));
  });

  it('opens a source it showed, at its range, and nothing else', async () => {
    incoming.fire({ type: 'openSource', uri: 'file:///etc/passwd', range });
    await settle();
    assert.equal(mock.shown.length, 0);
    assert.ok(mock.messages.some((m) => m.level === 'log' && /never shown/.test(m.text)));
    incoming.fire({ type: 'send', text: 'q', includeSelection: false, includeFile: false });
    await settle();
    incoming.fire({ type: 'openSource', uri: file.uri, range });
    await settle();
    assert.equal(mock.shown.length, 1);
    assert.equal(mock.shown[0]!.uri.toString(), file.uri);
    const sel = (mock.shown[0]!.options as { selection: { start: { line: number }; end: { line: number } } }).selection;
    assert.deepEqual([sel.start.line, sel.end.line], [2, 4]);
  });

  it('routes the review buttons: diff, accept (refused for a changed file), reject', async () => {
    mock.documents.push(new TextDocument(Uri.parse(file.uri), 'a\n'));
    incoming.fire({ type: 'send', text: 'q', includeSelection: false, includeFile: false });
    await settle();
    const { proposal } = posted.find((m) => m.type === 'proposal') as Extract<HostMessage, { type: 'proposal' }>;
    incoming.fire({ type: 'review', action: 'diff', id: proposal.id, uri: file.uri });
    await settle();
    assert.equal(mock.executed.filter((e) => e.command === 'vscode.diff').length, 1);
    mock.documents[0]!.setText('a\nuser edit\n');
    incoming.fire({ type: 'review', action: 'accept', id: proposal.id, uri: file.uri });
    await settle();
    assert.deepEqual(mock.applied, []);
    assert.deepEqual(posted[posted.length - 1], {
      type: 'fileState',
      id: proposal.id,
      uri: file.uri,
      state: 'changed',
      note: 'src/a.ts changed since the proposal; not applied.',
    });
    incoming.fire({ type: 'reviewAll', action: 'reject', id: proposal.id });
    await settle();
    assert.deepEqual(mock.applied, []);
  });

  it('answers an @ query with the server\'s items and / with its prompts', async () => {
    incoming.fire({ type: 'mentionQuery', kind: 'file', query: 'a.t', seq: 4 });
    incoming.fire({ type: 'prompts' });
    await settle();
    assert.deepEqual(calls[0], { method: 'mentions', params: { kind: 'file', query: 'a.t', limit: 20 } });
    assert.ok(posted.some((m) => JSON.stringify(m) === JSON.stringify({ type: 'mentionItems', seq: 4, items: [{ label: 'src/a.ts', detail: '', uri: file.uri }] })));
    assert.ok(posted.some((m) => JSON.stringify(m) === JSON.stringify({ type: 'prompts', prompts: [{ name: 'explain', description: 'Explain the code' }] })));
  });
});
