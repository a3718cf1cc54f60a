import * as assert from 'node:assert/strict';
import { kMaxTextBytes, parseHostMessage, parseWebviewMessage } from '../../src/shared/messages';

describe('webview messages', () => {
  it('accepts each well-formed message from the webview', () => {
    assert.deepEqual(parseWebviewMessage({ type: 'ready' }), { type: 'ready' });
    assert.deepEqual(parseWebviewMessage({ type: 'stop' }), { type: 'stop' });
    assert.deepEqual(parseWebviewMessage({ type: 'clear' }), { type: 'clear' });
    assert.deepEqual(parseWebviewMessage({ type: 'send', text: 'hi', includeSelection: true, includeFile: false }), {
      type: 'send',
      text: 'hi',
      includeSelection: true,
      includeFile: false,
    });
    assert.deepEqual(parseWebviewMessage({ type: 'copy', code: 'x' }), { type: 'copy', code: 'x' });
    assert.deepEqual(parseWebviewMessage({ type: 'insert', code: '' }), { type: 'insert', code: '' });
  });

  it('refuses anything else', () => {
    const bad: unknown[] = [
      null,
      undefined,
      'ready',
      42,
      [],
      { type: 'nope' },
      { type: 'ready', extra: 1 },
      { type: 'send', text: 'hi', includeSelection: 'yes', includeFile: false },
      { type: 'send', text: '   ', includeSelection: true, includeFile: false },
      { type: 'send', text: 'hi', includeSelection: true },
      { type: 'send', text: 7, includeSelection: true, includeFile: true },
      { type: 'send', text: 'x'.repeat(kMaxTextBytes + 1), includeSelection: true, includeFile: true },
      { type: 'copy' },
      { type: 'copy', code: { toString: 'x' } },
      { type: 'insert', code: 'x', command: 'rm -rf' },
      Object.create({ type: 'ready' }),
    ];
    for (const m of bad) assert.equal(parseWebviewMessage(m), undefined, JSON.stringify(m));
  });

  it('checks what the extension sends to the webview', () => {
    assert.deepEqual(parseHostMessage({ type: 'begin' }), { type: 'begin' });
    assert.deepEqual(parseHostMessage({ type: 'delta', text: 'a' }), { type: 'delta', text: 'a' });
    assert.deepEqual(parseHostMessage({ type: 'end' }), { type: 'end' });
    assert.deepEqual(parseHostMessage({ type: 'end', error: 'boom' }), { type: 'end', error: 'boom' });
    assert.deepEqual(parseHostMessage({ type: 'end', cancelled: true }), { type: 'end', cancelled: true });
    assert.deepEqual(parseHostMessage({ type: 'turn', turn: { role: 'user', content: 'q' } }), {
      type: 'turn',
      turn: { role: 'user', content: 'q' },
    });
    assert.deepEqual(parseHostMessage({ type: 'history', turns: [{ role: 'assistant', content: 'a' }], busy: false, mode: 'agent' }), {
      type: 'history',
      turns: [{ role: 'assistant', content: 'a' }],
      busy: false,
      mode: 'agent',
    });
    assert.equal(parseHostMessage({ type: 'history', turns: [], busy: false }), undefined, 'the mode is required');
    assert.equal(parseHostMessage({ type: 'turn', turn: { role: 'system', content: 'q' } }), undefined);
    assert.equal(parseHostMessage({ type: 'history', turns: [{ role: 'user' }], busy: false }), undefined);
    assert.equal(parseHostMessage({ type: 'history', turns: 'x', busy: false }), undefined);
    assert.equal(parseHostMessage({ type: 'delta', text: 1 }), undefined);
    assert.equal(parseHostMessage({ type: 'end', error: 3 }), undefined);
    assert.equal(parseHostMessage({ type: 'end', cancelled: 'yes' }), undefined);
    assert.equal(parseHostMessage({ type: 'begin', html: '<script>' }), undefined);
  });
});
