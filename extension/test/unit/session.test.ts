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
