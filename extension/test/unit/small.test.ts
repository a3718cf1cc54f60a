import * as assert from 'node:assert/strict';
import { Backoff } from '../../src/backoff';
import { bundledBinary, findBinary } from '../../src/binary';
import { csp, chatHtml, makeNonce } from '../../src/chat/html';
import { shortBackend, statusView } from '../../src/status';
import type { StatusResult } from '../../src/protocol';

describe('backoff', () => {
  it('doubles the delay up to the cap, then gives up after too many crashes', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 5000, maxCrashes: 4, windowMs: 60000 });
    assert.deepEqual([b.crashed(0), b.crashed(1), b.crashed(2), b.crashed(3)], [1000, 2000, 4000, 5000]);
    assert.equal(b.crashed(4), undefined);
    b.reset();
    assert.equal(b.crashed(5), 1000);
  });

  it('forgets crashes older than the window', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, maxCrashes: 2, windowMs: 1000 });
    assert.equal(b.crashed(0), 100);
    assert.equal(b.crashed(10), 200);
    assert.equal(b.crashed(5000), 100);
  });
});

describe('binary lookup', () => {
  it('prefers latent.path, else the bundled binary for the platform', () => {
    const have = new Set(['/opt/latent', '/ext/bin/linux-x64/latent']);
    const exists = (p: string) => have.has(p);
    assert.deepEqual(findBinary('/opt/latent', '/ext', exists, 'linux', 'x64'), { path: '/opt/latent' });
    assert.deepEqual(findBinary('', '/ext', exists, 'linux', 'x64'), { path: '/ext/bin/linux-x64/latent' });
    assert.match((findBinary('/nope', '/ext', exists, 'linux', 'x64') as { error: string }).error, /\/nope/);
    assert.match((findBinary('', '/ext', exists, 'darwin', 'arm64') as { error: string }).error, /darwin-arm64/);
    assert.equal(bundledBinary('/ext', 'win32', 'x64'), '/ext/bin/win32-x64/latent.exe');
  });
});

describe('chat page html', () => {
  it('has a strict CSP with the nonce and no remote or inline sources', () => {
    const policy = csp({ cspSource: 'vscode-resource:', nonce: 'abc' });
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /script-src 'nonce-abc'/);
    assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|https?:|\*/);
    const html = chatHtml({ cspSource: 'vscode-resource:', nonce: 'abc', scriptUri: 'x/chat.js', styleUri: 'x/chat.css' });
    assert.match(html, /<script nonce="abc" src="x\/chat.js"><\/script>/);
    assert.equal((html.match(/<script/g) ?? []).length, 1);
  });

  it('escapes what goes into attributes', () => {
    const html = chatHtml({ cspSource: 's', nonce: 'n"><script>', scriptUri: 'a', styleUri: 'b' });
    assert.doesNotMatch(html, /n"><script>/);
  });

  it('makes a fresh 128-bit nonce', () => {
    const n = makeNonce((k) => new Uint8Array(k).fill(7));
    assert.equal(Buffer.from(n, 'base64').length, 16);
  });
});

describe('status bar text', () => {
  const status: StatusResult = {
    backend: 'local cpu /models/deepseek-coder-v2-lite-q4_0.gguf',
    settings: {},
    completions: 3,
    suggestionCacheHits: 1,
    lastCompletionMs: 42,
    lastCachedTokens: 100,
    lastComputedTokens: 5,
    cache: {},
    documents: 1,
    index: [{ root: '/w', state: 'indexing', files: 12, symbols: 40 }],
  };

  it('shows backend, index progress and latency', () => {
    const v = statusView({ server: 'running', completionEnabled: true, status, lastLatencyMs: 57.4 });
    assert.match(v.text, /Latent: local cpu deepseek-coder/);
    assert.match(v.text, /indexing 12 files/);
    assert.match(v.text, /57 ms/);
    assert.match(v.tooltip, /100 cached \+ 5 computed/);
    assert.equal(v.warning, false);
  });

  it('warns when the server is down or the backend failed', () => {
    assert.equal(statusView({ server: 'failed', completionEnabled: true }).warning, true);
    const v = statusView({
      server: 'running',
      completionEnabled: false,
      status: { ...status, backend: 'none', backendError: 'no model', index: [] },
    });
    assert.equal(v.warning, true);
    assert.match(v.tooltip, /no model/);
    assert.match(v.text, /circle-slash/);
  });

  it('keeps file names and URLs short', () => {
    assert.equal(shortBackend('local cpu /a/b/m.gguf'), 'local cpu m.gguf');
    assert.equal(shortBackend('remote http://h:80/v1'), 'remote http://h:80/v1');
    assert.ok(shortBackend('remote https://a-very-long-host-name.example.com:8443/v1 (model)').length <= 28);
  });
});
