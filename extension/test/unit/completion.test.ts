import * as assert from 'node:assert/strict';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import { CompletionGate, CompletionOutcome, realClock } from '../../src/completion';

describe('inline completion gate', () => {
  const items = { items: [{ insertText: 'x' }] };

  it('waits for the debounce, then forwards and reports the latency', async () => {
    const done: CompletionOutcome[] = [];
    const gate = new CompletionGate(() => ({ enabled: true, debounceMs: 30 }), (o) => done.push(o));
    const t0 = Date.now();
    const r = await gate.provide(false, new CancellationTokenSource().token, () => items);
    assert.ok(Date.now() - t0 >= 25, 'debounced');
    assert.equal(r, items);
    assert.equal(done.length, 1);
    assert.equal(done[0]!.items, 1);
  });

  it('drops a request cancelled during the debounce (the user typed on)', async () => {
    const gate = new CompletionGate(() => ({ enabled: true, debounceMs: 5000 }), () => undefined);
    const src = new CancellationTokenSource();
    let calls = 0;
    const p = gate.provide(false, src.token, () => (calls++, items));
    setTimeout(() => src.cancel(), 10);
    const t0 = Date.now();
    assert.equal(await p, undefined);
    assert.ok(Date.now() - t0 < 4000, 'ends at once on cancel');
    assert.equal(calls, 0);
  });

  it('keeps only the last of a burst of keystrokes', async () => {
    // The debounce is long against the 5 ms between keystrokes, so a loaded machine's
    // late timers cannot let an early keystroke through.
    const gate = new CompletionGate(() => ({ enabled: true, debounceMs: 250 }), () => undefined);
    const sources: CancellationTokenSource[] = [];
    const results: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      sources.forEach((s) => s.cancel()); // VS Code cancels the previous request on each keystroke
      const s = new CancellationTokenSource();
      sources.push(s);
      results.push(gate.provide(false, s.token, () => ({ items: [{ insertText: String(i) }] })));
      await new Promise((r) => setTimeout(r, 5));
    }
    const r = await Promise.all(results);
    assert.deepEqual(r.slice(0, 4), [undefined, undefined, undefined, undefined]);
    assert.deepEqual(r[4], { items: [{ insertText: '4' }] });
    assert.equal(gate.forwarded, 1);
  });

  it('is off when disabled, except when invoked by hand (no debounce then)', async () => {
    const gate = new CompletionGate(() => ({ enabled: false, debounceMs: 5000 }), () => undefined);
    const token = new CancellationTokenSource().token;
    assert.equal(await gate.provide(false, token, () => items), undefined);
    const t0 = Date.now();
    assert.equal(await gate.provide(true, token, () => items), items);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('discards an answer that arrives after cancellation', async () => {
    const done: CompletionOutcome[] = [];
    const gate = new CompletionGate(() => ({ enabled: true, debounceMs: 0 }), (o) => done.push(o));
    const src = new CancellationTokenSource();
    const r = await gate.provide(false, src.token, async () => {
      src.cancel();
      return items;
    });
    assert.equal(r, undefined);
    assert.equal(done.length, 0);
  });

  it('the real clock sleeps and can be woken by cancellation', async () => {
    const src = new CancellationTokenSource();
    assert.equal(await realClock.sleep(1, src.token), true);
    src.cancel();
    assert.equal(await realClock.sleep(10000, src.token), false);
  });
});
