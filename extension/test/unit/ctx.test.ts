// The client's lifecycle (ctx.ts) with the language client stubbed: settings and the key
// go into initializationOptions, a dead server comes back after a growing delay with a
// notification, and one that keeps dying stays down with a clear message.
import * as assert from 'node:assert/strict';
import * as sinon from 'sinon';
import { Ctx, kSecretApiKey } from '../../src/ctx';
import { LanguageClient } from '../languageclient-mock';
import { mock, Uri } from '../vscode-mock';

function fakeExtension(secrets: Record<string, string> = {}) {
  return {
    extensionPath: '/ext',
    storageUri: Uri.file('/storage/ws1'),
    secrets: { get: (k: string) => Promise.resolve(secrets[k]) },
  } as never;
}

describe('language client lifecycle', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => {
    mock.reset();
    LanguageClient.instances = [];
    mock.config['latent.path'] = process.execPath; // any file that exists
    clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => clock.restore());

  it('starts `latent lsp` with the settings and the secret key', async () => {
    mock.config['latent.remote.url'] = 'http://127.0.0.1:8000';
    mock.config['latent.backend'] = 'remote';
    const ctx = new Ctx(fakeExtension({ [kSecretApiKey]: 'sk-1' }));
    await ctx.start();
    assert.equal(ctx.state, 'running');
    const c = LanguageClient.instances[0]!;
    assert.deepEqual(c.serverOptions, { command: process.execPath, args: ['lsp'], transport: 0 });
    const init = c.clientOptions.initializationOptions;
    assert.equal(init.backend, 'remote');
    assert.equal(init.remote.url, 'http://127.0.0.1:8000');
    assert.equal(init.remote.apiKey, 'sk-1');
    assert.equal(init.index.db, undefined, 'no workspace folder: the server picks the database');
    assert.deepEqual(c.clientOptions.documentSelector, [{ scheme: 'file' }, { scheme: 'untitled' }]);
  });

  it('restarts a server that died, after 1 s, 2 s, 4 s …, and tells the user', async () => {
    const ctx = new Ctx(fakeExtension());
    const states: string[] = [];
    ctx.onDidChangeState((s) => states.push(s));
    await ctx.start();
    for (const delay of [1000, 2000, 4000]) {
      const n = LanguageClient.instances.length;
      const r = LanguageClient.instances[n - 1]!.clientOptions.errorHandler.closed();
      assert.deepEqual(r, { action: 1, handled: true }, 'DoNotRestart: the library must not restart it itself');
      assert.equal(ctx.state, 'restarting');
      assert.match(mock.messages[mock.messages.length - 1]!.text, new RegExp(`restarting in ${delay / 1000} s`));
      await clock.tickAsync(delay - 1);
      assert.equal(LanguageClient.instances.length, n, 'not before the delay');
      await clock.tickAsync(1);
      assert.equal(LanguageClient.instances.length, n + 1);
      assert.equal(ctx.state, 'running');
    }
    assert.deepEqual(states.slice(0, 4), ['starting', 'running', 'restarting', 'starting']);
  });

  it('gives up after too many crashes, and a restart by hand starts afresh', async () => {
    const ctx = new Ctx(fakeExtension());
    await ctx.start();
    for (let i = 0; i < 5; i++) {
      LanguageClient.instances[LanguageClient.instances.length - 1]!.clientOptions.errorHandler.closed();
      await clock.tickAsync(30000); // each restart comes (1 … 16 s); all within 3 minutes
    }
    LanguageClient.instances[LanguageClient.instances.length - 1]!.clientOptions.errorHandler.closed();
    assert.equal(ctx.state, 'failed');
    const last = mock.messages[mock.messages.length - 1]!;
    assert.equal(last.level, 'error');
    assert.deepEqual(last.items, ['Restart', 'Show Log']);
    const n = LanguageClient.instances.length;
    await clock.tickAsync(600000);
    assert.equal(LanguageClient.instances.length, n, 'stays down');
    await ctx.restart();
    assert.equal(ctx.state, 'running');
    assert.equal(LanguageClient.instances.length, n + 1);
  });

  it('a stop by hand is not a crash', async () => {
    const ctx = new Ctx(fakeExtension());
    await ctx.start();
    const c = LanguageClient.instances[0]!;
    const stopped = ctx.stop();
    c.clientOptions.errorHandler.closed(); // the library reports the close of a stop too
    await stopped;
    await clock.tickAsync(60000);
    assert.equal(ctx.state, 'stopped');
    assert.equal(LanguageClient.instances.length, 1);
  });

  it('sends changed settings to a running server', async () => {
    const ctx = new Ctx(fakeExtension());
    await ctx.start();
    const sent: unknown[] = [];
    LanguageClient.instances[0]!.sendNotification = (...a: unknown[]) => (sent.push(a), Promise.resolve());
    mock.config['latent.completion.maxTokens'] = 99;
    await ctx.sendSettings();
    const [method, params] = sent[0] as [string, { settings: { completion: { maxTokens: number } } }];
    assert.equal(method, 'workspace/didChangeConfiguration');
    assert.equal(params.settings.completion.maxTokens, 99);
  });
});
