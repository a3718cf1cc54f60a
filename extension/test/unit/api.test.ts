import * as assert from 'node:assert/strict';
import { CancellationTokenSource, Disposable, ProgressType } from 'vscode-jsonrpc';
import { applyTextEdits, Connection, LatentApi } from '../../src/api';

// A connection that answers each request with a script: partial texts, then a result or an error.
class FakeConnection implements Connection {
  sent: { method: string; params: any }[] = [];
  notified: { method: string; params: unknown }[] = [];
  private progress = new Map<string | number, (v: unknown) => void>();
  constructor(private readonly script: (method: string, params: any, conn: FakeConnection) => Promise<unknown>) {}
  sendRequest<R>(method: string, params: unknown): Promise<R> {
    this.sent.push({ method, params });
    return this.script(method, params, this) as Promise<R>;
  }
  sendNotification(method: string, params: unknown): void {
    this.notified.push({ method, params });
  }
  onProgress<P>(_t: ProgressType<P>, token: string | number, h: (v: P) => void): Disposable {
    this.progress.set(token, h as (v: unknown) => void);
    return Disposable.create(() => this.progress.delete(token));
  }
  emit(token: string, v: unknown): void {
    this.progress.get(token)?.(v);
  }
  get listeners(): number {
    return this.progress.size;
  }
}

describe('LatentApi', () => {
  it('streams chat partial results, then returns the result', async () => {
    const conn = new FakeConnection(async (_m, p, c) => {
      c.emit(p.partialResultToken, { text: 'Hel' });
      c.emit(p.partialResultToken, { nope: 1 });
      c.emit(p.partialResultToken, { text: 'lo' });
      return { text: 'Hello', cachedTokens: 1, computedTokens: 2, generatedTokens: 2 };
    });
    const pieces: string[] = [];
    const r = await new LatentApi(conn).chat(
      [{ role: 'user', content: 'hi' }],
      { textDocument: { uri: 'file:///a.ts' } },
      (t) => pieces.push(t),
    );
    assert.deepEqual(pieces, ['Hel', 'lo']);
    assert.equal(r.kind, 'ok');
    assert.equal(conn.sent[0]!.method, 'latent/chat');
    assert.deepEqual(conn.sent[0]!.params.messages, [{ role: 'user', content: 'hi' }]);
    assert.deepEqual(conn.sent[0]!.params.context, { textDocument: { uri: 'file:///a.ts' } });
    assert.match(conn.sent[0]!.params.partialResultToken, /^latent-/);
    assert.equal(conn.listeners, 0, 'the progress handler is removed');
  });

  it('reports cancellation and errors as outcomes, never throws', async () => {
    const cancelled = new FakeConnection(() => Promise.reject(Object.assign(new Error('cancelled'), { code: -32800 })));
    assert.deepEqual(await new LatentApi(cancelled).explain('u', range(0, 0, 1, 0), () => undefined), {
      kind: 'cancelled',
    });
    const failed = new FakeConnection(() => Promise.reject(new Error('no backend is ready yet')));
    assert.deepEqual(await new LatentApi(failed).status(), { kind: 'error', message: 'no backend is ready yet' });
    const src = new CancellationTokenSource();
    const late = new FakeConnection(async () => {
      src.cancel();
      return { text: 'x' };
    });
    assert.equal((await new LatentApi(late).chat([], undefined, () => undefined, src.token)).kind, 'cancelled');
  });

  it('sends edit and focus as the server reads them', async () => {
    const conn = new FakeConnection(async () => ({ text: 'y', edit: { changes: {} } }));
    const api = new LatentApi(conn);
    await api.edit('file:///a.c', range(1, 0, 2, 0), 'rename x to y');
    assert.equal(conn.sent[0]!.method, 'latent/edit');
    assert.equal(conn.sent[0]!.params.instruction, 'rename x to y');
    assert.deepEqual(conn.sent[0]!.params.textDocument, { uri: 'file:///a.c' });
    await api.didFocus({ textDocument: { uri: 'file:///a.c' }, position: { line: 3, character: 1 } });
    assert.deepEqual(conn.notified, [
      { method: 'latent/didFocus', params: { textDocument: { uri: 'file:///a.c' }, position: { line: 3, character: 1 } } },
    ]);
  });
});

describe('LatentApi for agent mode', () => {
  it('sends mode, mentions and prompt, and routes sources and steps to their handlers', async () => {
    const src = { uri: 'file:///ws/a.ts', path: 'a.ts', range: range(0, 0, 3, 0), why: '@file' };
    const conn = new FakeConnection(async (_m, p, c) => {
      c.emit(p.partialResultToken, { sources: [src] });
      c.emit(p.partialResultToken, { step: { id: 1, tool: 'read_file', arguments: {}, title: 'Read a.ts', status: 'running' } });
      c.emit(p.partialResultToken, { step: { title: 'no id' } });
      c.emit(p.partialResultToken, { text: 'ok' });
      return { text: 'ok', cachedTokens: 0, computedTokens: 1, generatedTokens: 1, stopReason: 'answer' };
    });
    const got: string[] = [];
    const r = await new LatentApi(conn).chat([{ role: 'user', content: 'q' }], undefined, (t) => got.push(`text ${t}`), undefined, {
      mode: 'agent',
      mentions: [{ kind: 'codebase' }],
      prompt: 'explain',
      onSources: (s) => got.push(`sources ${s.length}`),
      onStep: (s) => got.push(`step ${s.id} ${s.status}`),
    });
    assert.equal(r.kind, 'ok');
    assert.deepEqual(got, ['sources 1', 'step 1 running', 'text ok']);
    const params = conn.sent[0]!.params;
    assert.equal(params.mode, 'agent');
    assert.deepEqual(params.mentions, [{ kind: 'codebase' }]);
    assert.equal(params.prompt, 'explain');
    // A plain chat sends none of them.
    await new LatentApi(conn).chat([{ role: 'user', content: 'q' }], undefined, () => undefined);
    assert.deepEqual(Object.keys(conn.sent[1]!.params).sort(), ['messages', 'partialResultToken']);
  });

  it('asks for mentions and prompts', async () => {
    const conn = new FakeConnection(async (m) =>
      m === 'latent/mentions'
        ? { items: [{ label: 'src/a.ts', detail: '', uri: 'file:///ws/src/a.ts' }] }
        : { prompts: [{ name: 'explain', description: 'Explain', context: ['selection'], source: 'builtin' }] },
    );
    const api = new LatentApi(conn);
    const m = await api.mentions({ kind: 'file', query: 'a.t', limit: 20 });
    assert.equal(m.kind === 'ok' && m.value.items[0]!.label, 'src/a.ts');
    const p = await api.prompts();
    assert.equal(p.kind === 'ok' && p.value.prompts[0]!.name, 'explain');
    assert.deepEqual(conn.sent, [
      { method: 'latent/mentions', params: { kind: 'file', query: 'a.t', limit: 20 } },
      { method: 'latent/prompts', params: {} },
    ]);
    const missing = new FakeConnection(() => Promise.reject(Object.assign(new Error('Unhandled method latent/prompts'), { code: -32601 })));
    assert.deepEqual(await new LatentApi(missing).prompts(), { kind: 'error', message: 'Unhandled method latent/prompts' });
  });
});

function range(a: number, b: number, c: number, d: number) {
  return { start: { line: a, character: b }, end: { line: c, character: d } };
}

describe('applyTextEdits', () => {
  it('applies LSP edits by line and UTF-16 column', () => {
    const text = 'int a;\nint b;\nint c;\n';
    assert.equal(applyTextEdits(text, [{ range: range(1, 0, 2, 0), newText: 'long b;\n' }]), 'int a;\nlong b;\nint c;\n');
    assert.equal(
      applyTextEdits(text, [
        { range: range(0, 4, 0, 5), newText: 'x' },
        { range: range(2, 4, 2, 5), newText: 'z' },
      ]),
      'int x;\nint b;\nint z;\n',
    );
    assert.equal(applyTextEdits('é😀x', [{ range: range(0, 3, 0, 4), newText: 'y' }]), 'é😀y');
    assert.equal(applyTextEdits('ab', [{ range: range(0, 9, 5, 0), newText: '!' }]), 'ab!');
  });
});
