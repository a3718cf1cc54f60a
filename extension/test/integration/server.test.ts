// The extension's client-side code (LatentApi, ChatSession, CompletionGate, the settings
// it sends, applyTextEdits, the re-index notifications) against the real `latent lsp`
// over stdio, with the server's scripted backend so answers are deterministic without a
// model. vscode-jsonrpc stands where vscode-languageclient stands in the editor.
import * as assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CancellationTokenSource, MessageConnection } from 'vscode-jsonrpc';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import { applyTextEdits, LatentApi } from '../../src/api';
import { ChatSession } from '../../src/chat/session';
import { reindexParams } from '../../src/commands';
import { CompletionGate } from '../../src/completion';
import { readSettings, serverSettings } from '../../src/config';
import type { StatusResult } from '../../src/protocol';
import type { HostMessage, Turn } from '../../src/shared/messages';

const repo = path.resolve(__dirname, '../../../..');
const binary = process.env.LATENT_BIN ?? path.join(repo, 'build/latent');

// The scripted backend answers every generation with the next of these, in turn.
const kCompletion = 'return a + b;';
const kChat = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ') + ' and `code`.';
const kEdit = 'Here it is:\n```ts\n  return a + b; // summed\n```\n';
const kExplain = 'It adds two numbers.';

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('extension client against `latent lsp` (scripted backend)', function () {
  let child: ChildProcess;
  let conn: MessageConnection;
  let api: LatentApi;
  let tmp: string;
  let uri: string;
  let stderr = '';
  const original = 'export function add(a: number, b: number): number {\n  \n}\n';
  let exitResolve: (code: number | null) => void = () => undefined;
  const exited = new Promise<number | null>((resolve) => (exitResolve = resolve));
  const messages: string[] = [];

  before(async function () {
    if (!fs.existsSync(binary)) {
      if (process.env.LATENT_TEST_ALLOW_SKIP === '1') {
        console.log(`    (skipped: no server at ${binary}; LATENT_TEST_ALLOW_SKIP=1)`);
        this.skip();
      }
      throw new Error(`no latent binary at ${binary}: build it (scripts/setup) or set LATENT_BIN`);
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latent-ext-'));
    const ws = path.join(tmp, 'ws');
    fs.mkdirSync(ws);
    fs.writeFileSync(path.join(ws, 'add.ts'), original);
    fs.writeFileSync(path.join(ws, 'util.ts'), 'export function twice(x: number) {\n  return 2 * x;\n}\n');
    uri = pathToFileURL(path.join(ws, 'add.ts')).toString();
    // As the language client starts it: `latent lsp --stdio`.
    child = spawn(binary, ['lsp', '--stdio', '--enable-test-backend'], {
      env: { ...process.env, XDG_CACHE_HOME: path.join(tmp, 'cache') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => exitResolve(code));
    conn = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    conn.onRequest('window/workDoneProgress/create', () => null);
    conn.onRequest('client/registerCapability', () => null);
    conn.onNotification('window/showMessage', (p: { message: string }) => void messages.push(p.message));
    conn.listen();
    api = new LatentApi(conn);

    const settings = {
      ...serverSettings(readSettings(() => undefined), { indexDb: path.join(tmp, 'index.sqlite') }),
      backend: 'scripted',
      script: [kCompletion, kChat, kEdit, kExplain],
    };
    const init = await conn.sendRequest<{ capabilities: Record<string, unknown> }>('initialize', {
      processId: process.pid,
      rootUri: pathToFileURL(ws).toString(),
      workspaceFolders: [{ uri: pathToFileURL(ws).toString(), name: 'ws' }],
      capabilities: {
        window: { workDoneProgress: true },
        workspace: { didChangeWatchedFiles: { dynamicRegistration: true }, workspaceFolders: true },
        general: { positionEncodings: ['utf-16'] },
      },
      initializationOptions: settings,
    });
    assert.equal(init.capabilities.inlineCompletionProvider, true);
    assert.deepEqual((init.capabilities.experimental as { latent: unknown }).latent, {
      chat: true,
      explain: true,
      edit: true,
      status: true,
      didFocus: true,
    });
    await conn.sendNotification('initialized', {});
    await until('the scripted backend', async () => {
      const s = await api.status();
      return s.kind === 'ok' && s.value.backend === 'scripted' ? true : undefined;
    });
    await conn.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'typescript', version: 1, text: original },
    });
  });

  after(function () {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    conn?.dispose();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (this.currentTest?.state === 'failed') console.log(stderr.slice(-4000));
  });

  it('inline completion through the debounce gate', async () => {
    const latencies: number[] = [];
    const gate = new CompletionGate(() => ({ enabled: true, debounceMs: 250 }), (o) => latencies.push(o.ms));
    // A burst of keystrokes: VS Code cancels each request when the next one comes.
    const sources: CancellationTokenSource[] = [];
    const answers: Promise<unknown>[] = [];
    for (let i = 0; i < 3; i++) {
      sources.forEach((s) => s.cancel());
      const src = new CancellationTokenSource();
      sources.push(src);
      // What vscode-languageclient sends for the provider call (LSP 3.18, triggerKind Automatic = 2).
      answers.push(
        gate.provide(false, src.token, () =>
          conn.sendRequest('textDocument/inlineCompletion', {
            textDocument: { uri },
            position: { line: 1, character: 2 },
            context: { triggerKind: 2 },
          }, src.token),
        ),
      );
      await new Promise((r) => setTimeout(r, 2));
    }
    const r = (await Promise.all(answers)) as ({ items: { insertText: string; range: unknown }[] } | undefined)[];
    assert.equal(gate.forwarded, 1, 'only the last keystroke reaches the server');
    assert.equal(r[0], undefined);
    const items = r[2]!.items;
    assert.equal(items.length, 1);
    assert.match(items[0]!.insertText, /^return a \+ b;/);
    assert.deepEqual(items[0]!.range, { start: { line: 1, character: 2 }, end: { line: 1, character: 2 } });
    assert.equal(latencies.length, 1);
  });

  it('chat streams partial results into the session and the webview messages', async () => {
    const turns: Turn[] = [];
    const session = new ChatSession(() => api, { get: () => turns, update: (t) => void turns.splice(0, turns.length, ...t) });
    const posted: HostMessage[] = [];
    session.attach((m) => posted.push(m));
    await session.send('what does add do?', { textDocument: { uri } });
    const deltas = posted.filter((m): m is { type: 'delta'; text: string } => m.type === 'delta');
    assert.ok(deltas.length >= 2, `streamed in ${deltas.length} pieces`);
    assert.equal(deltas.map((d) => d.text).join(''), kChat);
    assert.deepEqual(posted[posted.length - 1], { type: 'end' });
    const last = turns[turns.length - 1]!;
    assert.deepEqual([last.role, last.content], ['assistant', kChat]);
    // A server with repository-aware chat names the file it was given as a source.
    for (const s of last.sources ?? []) assert.equal(s.uri, uri);
  });

  it('edit returns a WorkspaceEdit the diff view applies', async () => {
    const range = { start: { line: 1, character: 0 }, end: { line: 2, character: 0 } };
    const r = await api.edit(uri, range, 'implement it');
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    if (r.kind !== 'ok') return;
    const edits = r.value.edit.changes[uri]!;
    assert.equal(edits.length, 1);
    assert.equal(
      applyTextEdits(original, edits),
      'export function add(a: number, b: number): number {\n  return a + b; // summed\n}\n',
    );
  });

  it('explain streams an explanation of a range', async () => {
    let streamed = '';
    const r = await api.explain(uri, { start: { line: 0, character: 0 }, end: { line: 2, character: 1 } }, (t) => (streamed += t));
    assert.equal(r.kind, 'ok');
    assert.equal(streamed, kExplain);
  });

  it('status reports the backend, the documents and the index; focus is accepted', async () => {
    await api.didFocus({ textDocument: { uri }, position: { line: 1, character: 2 } });
    const s = await until<StatusResult>('the index', async () => {
      const r = await api.status();
      return r.kind === 'ok' && r.value.index[0]?.state === 'ready' ? r.value : undefined;
    });
    assert.equal(s.backend, 'scripted');
    assert.equal(s.documents, 1);
    assert.ok(s.completions >= 1);
    assert.ok(s.index[0]!.files >= 2, JSON.stringify(s.index));
    assert.equal(s.index[0]!.db, path.join(tmp, 'index.sqlite'), 'the index lives where the extension says');
    assert.equal((s.settings.remote as { apiKey: string }).apiKey, '');
  });

  it('re-index: the workspace folders removed and added again', async () => {
    fs.writeFileSync(path.join(tmp, 'ws', 'more.ts'), 'export const three = 3;\n');
    const folder = { uri: pathToFileURL(path.join(tmp, 'ws')).toString(), name: 'ws' };
    await conn.sendNotification('workspace/didChangeWorkspaceFolders', reindexParams([folder]));
    const s = await until<StatusResult>('the new index', async () => {
      const r = await api.status();
      return r.kind === 'ok' && r.value.index[0]?.state === 'ready' && r.value.index[0].files >= 3 ? r.value : undefined;
    });
    assert.equal(s.index.length, 1);
  });

  it('new settings (and a key) by didChangeConfiguration; a slow answer is stopped', async () => {
    await conn.sendNotification('workspace/didChangeConfiguration', {
      settings: {
        ...serverSettings(readSettings(() => undefined), { apiKey: 'sk-test-secret' }),
        backend: 'scripted',
        script: ['slow answer'],
        scriptDelayMs: 5000,
      },
    });
    await until('the new backend', async () => {
      const r = await api.status();
      return r.kind === 'ok' && r.value.backend === 'scripted' && (r.value.settings.remote as { apiKey: string }).apiKey === '***'
        ? true
        : undefined;
    });
    const session = new ChatSession(() => api, { get: () => [], update: () => undefined });
    const posted: HostMessage[] = [];
    session.attach((m) => posted.push(m));
    const t0 = Date.now();
    const done = session.send('take your time', undefined);
    await new Promise((r) => setTimeout(r, 200));
    session.stop();
    await done;
    assert.ok(Date.now() - t0 < 3000, 'stopped long before the answer');
    assert.deepEqual(posted[posted.length - 1], { type: 'end', cancelled: true });
    assert.ok(!stderr.includes('sk-test-secret'), 'the key is never logged');
  });

  it('shutdown and exit end the process with status 0', async () => {
    await conn.sendRequest('shutdown');
    await conn.sendNotification('exit');
    assert.equal(await exited, 0);
    assert.deepEqual(messages, []);
  });
});
