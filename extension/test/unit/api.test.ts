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
