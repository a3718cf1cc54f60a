import * as assert from 'node:assert/strict';
import type { LatentApi, Outcome } from '../../src/api';
import { ChatSession } from '../../src/chat/session';
import type { ChatResult } from '../../src/protocol';
import type { HostMessage, Turn } from '../../src/shared/messages';

// An api whose chat streams `pieces`, one per tick, unless cancelled.
function fakeApi(pieces: string[], seen: unknown[] = []): LatentApi {
  const chat = async (
    messages: unknown,
    context: unknown,
    onText: (t: string) => void,
    token?: { isCancellationRequested: boolean },
  ): Promise<Outcome<ChatResult>> => {
    seen.push({ messages, context });
    for (const p of pieces) {
      await new Promise((r) => setTimeout(r, 2));
      if (token?.isCancellationRequested) return { kind: 'cancelled' };
      onText(p);
    }
    return { kind: 'ok', value: { text: pieces.join(''), cachedTokens: 0, computedTokens: 1, generatedTokens: pieces.length } };
  };
  return {
    chat,
    explain: (_u: string, _r: unknown, onText: (t: string) => void, token?: { isCancellationRequested: boolean }) =>
      chat('explain', undefined, onText, token),
  } as unknown as LatentApi;
}

function memory(initial: Turn[] = []) {
  let turns = initial;
  return { get: () => turns, update: (t: Turn[]) => void (turns = t), read: () => turns };
}

describe('chat session', () => {
  it('streams an answer and keeps the conversation', async () => {
    const store = memory();
    const seen: any[] = [];
    const s = new ChatSession(() => fakeApi(['Hello', ' world'], seen), store);
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    await s.send('hi', { textDocument: { uri: 'file:///a.ts' } });
    assert.deepEqual(posted, [
      { type: 'history', turns: [], busy: false, mode: 'chat' },
      { type: 'turn', turn: { role: 'user', content: 'hi' } },
      { type: 'begin' },
      { type: 'delta', text: 'Hello' },
      { type: 'delta', text: ' world' },
      { type: 'end' },
    ]);
    assert.deepEqual(store.read(), [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'Hello world' },
    ]);
    assert.deepEqual(seen[0].messages, [{ role: 'user', content: 'hi' }]);
    assert.deepEqual(seen[0].context, { textDocument: { uri: 'file:///a.ts' } });
    // The next question carries the history.
    await s.send('more?', undefined);
    assert.equal(seen[1].messages.length, 3);
  });

  it('stops an answer and keeps what was shown', async () => {
    const store = memory();
    const s = new ChatSession(() => fakeApi(['a', 'b', 'c', 'd', 'e', 'f']), store);
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    const p = s.send('q', undefined);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(s.busy, true);
    s.stop();
    await p;
    assert.equal(s.busy, false);
    assert.deepEqual(posted[posted.length - 1], { type: 'end', cancelled: true });
    const last = store.read()[store.read().length - 1]!;
    assert.equal(last.role, 'assistant');
    assert.ok(last.content.length >= 1 && last.content.length < 6);
  });

  it('a new question replaces an answer in progress without ending the new one', async () => {
    const store = memory();
    const s = new ChatSession(() => fakeApi(['a', 'b', 'c', 'd']), store);
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    const first = s.send('one', undefined);
    await new Promise((r) => setTimeout(r, 3));
    const second = s.send('two', undefined);
    await Promise.all([first, second]);
    const i = posted.findIndex((m) => m.type === 'turn' && m.turn.content === 'two');
    assert.deepEqual(
      posted.slice(i + 1).map((m) => m.type),
      ['begin', 'delta', 'delta', 'delta', 'delta', 'end'],
      'nothing of the first answer after the second question',
    );
    assert.deepEqual(
      store.read().map((t) => t.content),
      ['one', 'two', 'abcd'],
    );
  });

  it('restores history on attach, and clears it', async () => {
    const store = memory([{ role: 'user', content: 'old' }]);
    const s = new ChatSession(() => undefined, store);
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    assert.deepEqual(posted[0], { type: 'history', turns: [{ role: 'user', content: 'old' }], busy: false, mode: 'chat' });
    await s.clear();
    assert.deepEqual(store.read(), []);
    assert.deepEqual(posted[1], { type: 'history', turns: [], busy: false, mode: 'chat' });
  });

  it('says so when the server is not running', async () => {
    const s = new ChatSession(() => undefined, memory());
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    await s.send('q', undefined);
    assert.deepEqual(posted.slice(-2), [{ type: 'begin' }, { type: 'end', error: 'the Latent server is not running' }]);
  });

  it('streams an explanation under a label', async () => {
    const store = memory();
    const s = new ChatSession(() => fakeApi(['It adds.']), store);
    await s.explain('file:///a.c', { start: { line: 0, character: 0 }, end: { line: 1, character: 0 } }, 'Explain a.c, line 1');
    assert.deepEqual(store.read(), [
      { role: 'user', content: 'Explain a.c, line 1' },
      { role: 'assistant', content: 'It adds.' },
    ]);
  });
});

// An api whose chat plays an agent run: sources, a step running then done, text, and a
// result with the final steps and a proposal.
function agentApi(seen: any[] = []): LatentApi {
  const src = { uri: 'file:///ws/src/a.ts', path: 'src/a.ts', range: { start: { line: 9, character: 0 }, end: { line: 39, character: 0 } }, why: 'search: parse config' };
  const step1 = { id: 1, tool: 'search_code', arguments: { query: 'parse config' }, title: 'Searched “parse config”', status: 'running' };
  const done1 = { ...step1, status: 'done', detail: 'src/a.ts:10', sources: [src] };
  const step2 = { id: 2, tool: 'edit_file', arguments: {}, title: 'Proposed an edit to src/a.ts', status: 'done' };
  const file = { uri: 'file:///ws/src/a.ts', path: 'src/a.ts', created: false, oldText: 'a\n', newText: 'b\n' };
  const chat = async (messages: unknown, context: unknown, onText: (t: string) => void, token: unknown, extra: any) => {
    seen.push({ messages, context, extra });
    await new Promise((r) => setTimeout(r, 2));
    extra.onSources?.([src]);
    extra.onStep?.(step1);
    await new Promise((r) => setTimeout(r, 2));
    extra.onStep?.(done1);
    extra.onStep?.({ id: 'bad' });
    onText('Done: ');
    return {
      kind: 'ok',
      value: {
        text: 'Done: see the proposal.',
        cachedTokens: 0,
        computedTokens: 1,
        generatedTokens: 1,
        sources: [src],
        steps: [done1, step2],
        stopReason: 'answer',
        proposal: { edit: {}, files: [file] },
      },
    };
  };
  return { chat } as unknown as LatentApi;
}

function sink() {
  const added: unknown[] = [];
  let next = 1;
  return {
    added,
    add: (p: any) => (added.push(p), { id: next++, files: p.files.map((f: any) => ({ uri: f.uri, path: f.path, created: f.created, added: 1, removed: 1, state: 'pending' as const })) }),
    startAfter: (id: number) => (next = Math.max(next, id + 1)),
  };
}

describe('chat session in agent mode', () => {
  it('keeps the mode per conversation and sends it', async () => {
    const store = { ...memory(), mode: undefined as any, getMode: () => store.mode, updateMode: (m: any) => void (store.mode = m) };
    const seen: any[] = [];
    const s = new ChatSession(() => agentApi(seen), store, sink());
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    assert.equal(s.mode, 'chat');
    await s.setMode('agent');
    assert.equal(store.mode, 'agent');
    assert.deepEqual(posted[1], { type: 'mode', mode: 'agent' });
    await s.send('fix it', undefined, { mentions: [{ kind: 'codebase' }] });
    assert.equal(seen[0].extra.mode, 'agent');
    assert.match(seen[0].extra.conversationId, /^chat-[0-9a-f-]{36}$/);
    assert.deepEqual(seen[0].extra.mentions, [{ kind: 'codebase' }]);
    assert.equal(new ChatSession(() => undefined, store).mode, 'agent', 'the mode comes back with the conversation');
    await s.send('more', undefined);
    assert.equal(seen[1].extra.conversationId, seen[0].extra.conversationId, 'one id per conversation');
    await s.clear();
    await s.send('new', undefined);
    assert.notEqual(seen[2].extra.conversationId, seen[0].extra.conversationId, 'a new conversation, a new id');
    await s.clear();
    assert.equal(s.mode, 'chat', 'a new conversation starts as a chat');
    assert.equal(store.mode, 'chat');
  });

  it('streams sources and steps, then keeps the proposal for review', async () => {
    const store = memory();
    const proposals = sink();
    const s = new ChatSession(() => agentApi(), store, proposals);
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    await s.send('fix the parser', undefined);
    const kinds = posted.map((m) => (m.type === 'step' ? `step ${m.step.id} ${m.step.status}` : m.type));
    assert.deepEqual(kinds, ['history', 'turn', 'begin', 'sources', 'step 1 running', 'step 1 done', 'delta', 'delta', 'step 2 done', 'proposal', 'end']);
    const step = posted.find((m) => m.type === 'step' && m.step.status === 'done') as Extract<HostMessage, { type: 'step' }>;
    assert.deepEqual(Object.keys(step.step).sort(), ['detail', 'id', 'sources', 'status', 'title', 'tool'], 'no arguments in the view');
    assert.equal(proposals.added.length, 1);
    const turn = store.read()[1]!;
    assert.equal(turn.content, 'Done: see the proposal.');
    assert.equal(turn.steps!.length, 2);
    assert.equal(turn.sources![0]!.path, 'src/a.ts');
    assert.equal(turn.proposal!.id, 1);
    assert.equal(turn.stopReason, 'answer');
    assert.ok(s.hasShown('file:///ws/src/a.ts'));
    assert.ok(!s.hasShown('file:///etc/passwd'));
    // A file's review state is kept in the conversation and shown.
    await s.fileState(1, 'file:///ws/src/a.ts', 'changed', 'src/a.ts changed since the proposal; not applied.');
    assert.deepEqual(posted[posted.length - 1], { type: 'fileState', id: 1, uri: 'file:///ws/src/a.ts', state: 'changed', note: 'src/a.ts changed since the proposal; not applied.' });
    assert.equal(store.read()[1]!.proposal!.files[0]!.state, 'changed');
    // A restored conversation's proposal ids are not reused.
    const later = sink();
    new ChatSession(() => undefined, store, later);
    assert.equal(later.add({ files: [] }).id, 2);
  });

  it('replays the answer in progress, sources and steps included, to a reloaded view', async () => {
    const s = new ChatSession(() => agentApi(), memory(), sink());
    const p = s.send('q', undefined);
    await new Promise((r) => setTimeout(r, 3));
    const posted: HostMessage[] = [];
    s.attach((m) => posted.push(m));
    assert.deepEqual(posted.slice(0, 4).map((m) => m.type), ['history', 'begin', 'sources', 'step']);
    await p;
  });

  it('sends a prompt by name with the words after it as the question', async () => {
    const store = memory();
    const seen: any[] = [];
    // fakeApi ignores extra: see what reaches LatentApi.chat through a wrapper.
    const extras: any[] = [];
    const api = fakeApi(['ok'], seen);
    const wrapped = { ...api, chat: (m: any, c: any, t: any, k: any, e: any) => (extras.push(e), api.chat(m, c, t, k, e)) } as LatentApi;
    const s = new ChatSession(() => wrapped, store);
    await s.send('with error handling', { textDocument: { uri: 'file:///a.ts' } }, { prompt: 'refactor' });
    assert.equal(extras[0].prompt, 'refactor');
    assert.equal(seen[0].messages[seen[0].messages.length - 1].content, 'with error handling');
    assert.equal(store.read()[0]!.content, '/refactor with error handling', 'the conversation shows what was typed');
  });
});
