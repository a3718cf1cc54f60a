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

  const range = { start: { line: 1, character: 0 }, end: { line: 4, character: 2 } };
  const source = { uri: 'file:///ws/a.ts', path: 'a.ts', range, why: '@file' };

  it('accepts the agent-mode messages from the webview', () => {
    const send = { type: 'send', text: 'why?', includeSelection: false, includeFile: false };
    const mentions = [{ kind: 'file', uri: 'file:///ws/a.ts', range }, { kind: 'symbol', name: 'parse' }, { kind: 'codebase' }, { kind: 'openEditors' }];
    assert.deepEqual(parseWebviewMessage({ ...send, mentions }), { ...send, mentions });
    assert.deepEqual(parseWebviewMessage({ ...send, mentions: [] }), send, 'no mentions: none sent');
    assert.deepEqual(parseWebviewMessage({ ...send, text: '', prompt: 'tests' }), { ...send, text: '', prompt: 'tests' });
    for (const m of [
      { type: 'mode', mode: 'agent' },
      { type: 'openSource', uri: 'file:///ws/a.ts', range },
      { type: 'review', action: 'diff', id: 3, uri: 'file:///ws/a.ts' },
      { type: 'review', action: 'accept', id: 3, uri: 'file:///ws/a.ts' },
      { type: 'review', action: 'reject', id: 3, uri: 'file:///ws/a.ts' },
      { type: 'reviewAll', action: 'accept', id: 3 },
      { type: 'reviewAll', action: 'reject', id: 3 },
      { type: 'mentionQuery', kind: 'file', query: 'src/a', seq: 7 },
      { type: 'prompts' },
    ]) {
      assert.deepEqual(parseWebviewMessage(m), m, JSON.stringify(m));
    }
  });

  it('refuses malformed agent-mode messages from the webview', () => {
    const send = { type: 'send', text: 'why?', includeSelection: false, includeFile: false };
    const bad: unknown[] = [
      { ...send, mentions: [{ kind: 'shell', command: 'rm' }] },
      { ...send, mentions: [{ kind: 'file', uri: '' }] },
      { ...send, mentions: [{ kind: 'codebase', extra: 1 }] },
      { ...send, mentions: Array.from({ length: 51 }, () => ({ kind: 'codebase' })) },
      { ...send, prompt: '../x' },
      { ...send, text: ' ', prompt: undefined },
      { type: 'mode', mode: 'yolo' },
      { type: 'openSource', uri: 'file:///a', range: { start: { line: -1, character: 0 }, end: { line: 0, character: 0 } } },
      { type: 'openSource', uri: 'file:///a' },
      { type: 'review', action: 'write', id: 1, uri: 'file:///a' },
      { type: 'review', action: 'accept', id: 1.5, uri: 'file:///a' },
      { type: 'reviewAll', action: 'diff', id: 1 },
      { type: 'mentionQuery', kind: 'codebase', query: '', seq: 1 },
      { type: 'mentionQuery', kind: 'file', query: 'x'.repeat(5000), seq: 1 },
      { type: 'prompts', all: true },
    ];
    for (const m of bad) assert.equal(parseWebviewMessage(m), undefined, JSON.stringify(m).slice(0, 200));
  });

  it('checks the agent-mode messages the extension sends', () => {
    const step = { id: 1, tool: 'read_file', title: 'Read a.ts lines 2–5', status: 'done', detail: 'text', sources: [source] };
    const proposal = { id: 2, files: [{ uri: 'file:///ws/a.ts', path: 'a.ts', created: false, added: 3, removed: 1, state: 'pending' }] };
    const good: unknown[] = [
      { type: 'mode', mode: 'chat' },
      { type: 'sources', sources: [source] },
      { type: 'step', step },
      { type: 'step', step: { id: 2, tool: 'search_code', title: 'Searching', status: 'running' } },
      { type: 'proposal', proposal },
      { type: 'fileState', id: 2, uri: 'file:///ws/a.ts', state: 'changed', note: 'a.ts changed since the proposal' },
      { type: 'end', stopReason: 'stepLimit' },
      { type: 'mentionItems', seq: 3, items: [{ label: 'src/a.ts', detail: '', uri: 'file:///ws/src/a.ts' }] },
      { type: 'prompts', prompts: [{ name: 'explain', description: 'Explain the code' }] },
      { type: 'turn', turn: { role: 'assistant', content: 'ok', sources: [source], steps: [step], proposal, stopReason: 'answer' } },
    ];
    for (const m of good) assert.deepEqual(parseHostMessage(m), m, JSON.stringify(m));
    const bad: unknown[] = [
      { type: 'sources', sources: [{ ...source, html: '<b>' }] },
      { type: 'step', step: { ...step, status: 'exploded' } },
      { type: 'step', step: { ...step, arguments: {} } },
      { type: 'proposal', proposal: { id: 2, files: [{ ...proposal.files[0], state: 'maybe' }] } },
      { type: 'proposal', proposal: { id: 2, files: [{ ...proposal.files[0], added: -1 }] } },
      { type: 'fileState', id: 2, uri: 'file:///a', state: 'accepted', extra: 1 },
      { type: 'end', stopReason: 'tired' },
      { type: 'mentionItems', seq: 3, items: [{ label: 1, detail: '', uri: '' }] },
      { type: 'prompts', prompts: 'explain' },
      { type: 'turn', turn: { role: 'assistant', content: 'ok', steps: [{ id: 1 }] } },
    ];
    for (const m of bad) assert.equal(parseHostMessage(m), undefined, JSON.stringify(m));
  });
});
