// Agent mode end to end: the bundled extension (dist/extension.js) in the fake VS Code
// host, the real `latent lsp` with its remote backend pointed at a scripted
// OpenAI-compatible server written here, which answers /v1/chat/completions with tool
// calls in turn — search_code, read_file, edit_file on two files — then a final answer,
// streamed as SSE the way OpenAI streams tool calls. The chat view is driven through its
// webview messages, as the page would: agent mode on, a question, then the review list's
// buttons. Asserts the steps as they arrive, the proposal's files, that nothing is written
// before Accept, that Accept applies them, and that a file changed since is refused.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { applyTextEdits } from '../../src/api';
import type { HostMessage, ReviewView, ViewStep } from '../../src/shared/messages';
import { Selection, TextDocument, Uri, WorkspaceEdit } from '../vscode-mock';
import { Host, loadExtension, makeHost } from './fake-host';

const ext = path.resolve(__dirname, '../../..');
const binary = process.env.LATENT_BIN ?? path.join(ext, '..', 'build', 'latent');
const bundle = path.join(ext, 'dist', 'extension.js');

const kConfig = [
  'export interface Config {',
  '  name: string;',
  '}',
  '',
  'export function parse_config(text: string): Config {',
  '  return JSON.parse(text) as Config;',
  '}',
  '',
].join('\n');
const kUtil = ['export function trimmed(s: string): string {', '  return s;', '}', ''].join('\n');
const kConfigOld = '  return JSON.parse(text) as Config;\n';
const kConfigNew = "  if (!text.trim()) throw new Error('empty config');\n  return JSON.parse(text) as Config;\n";
const kUtilOld = '  return s;\n';
const kUtilNew = '  return s.trim();\n';
const kAnswer = 'parse_config now refuses an empty file, and trimmed() trims. Review both files.';

interface ChatBody {
  stream?: boolean;
  tools?: { function: { name: string } }[];
  messages: { role: string; content: string | null; tool_call_id?: string; tool_calls?: unknown[] }[];
}

// The tool call the script makes after `done` tool results, or undefined: answer.
function scriptedCall(done: number): { name: string; args: Record<string, unknown> } | undefined {
  switch (done) {
    case 0:
      return { name: 'search_code', args: { query: 'parse_config' } };
    case 1:
      return { name: 'read_file', args: { path: 'src/config.ts', start_line: 1, end_line: 40 } };
    case 2:
      return { name: 'edit_file', args: { path: 'src/config.ts', old_text: kConfigOld, new_text: kConfigNew } };
    case 3:
      return { name: 'edit_file', args: { path: 'src/util.ts', old_text: kUtilOld, new_text: kUtilNew } };
    default:
      return undefined;
  }
}

// An OpenAI-compatible server whose agent conversation is a script: the next tool call by
// how many tool results the request carries, the arguments streamed in pieces.
function scriptedOpenAI(seen: ChatBody[]): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(raw || '{}') as ChatBody;
      if (req.url !== '/v1/chat/completions') {
        res.writeHead(404).end();
        return;
      }
      seen.push(body);
      const done = body.messages.filter((m) => m.role === 'tool').length;
      const call = body.tools?.length ? scriptedCall(done) : undefined;
      const usage = { prompt_tokens: 100, completion_tokens: 10, prompt_tokens_details: { cached_tokens: 0 } };
      if (!body.stream) {
        const message = call
          ? { role: 'assistant', content: null, tool_calls: [{ id: `call_${done}`, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.args) } }] }
          : { role: 'assistant', content: kAnswer };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message, finish_reason: call ? 'tool_calls' : 'stop' }], usage }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta: unknown, finish: string | null = null) =>
        `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      const events: string[] = [];
      if (call) {
        const args = JSON.stringify(call.args);
        const cut = Math.floor(args.length / 2);
        events.push(
          chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: `call_${done}`, type: 'function', function: { name: call.name, arguments: '' } }] }),
          chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(0, cut) } }] }),
          chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(cut) } }] }),
          chunk({}, 'tool_calls'),
        );
      } else {
        events.push(chunk({ role: 'assistant', content: '' }));
        for (const piece of kAnswer.match(/.{1,20}/g)!) events.push(chunk({ content: piece }));
        events.push(chunk({}, 'stop'));
      }
      events.push(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [], usage })}\n\n`, 'data: [DONE]\n\n');
      let i = 0;
      const next = () => {
        if (i < events.length) {
          res.write(events[i++]);
          setTimeout(next, 5);
        } else {
          res.end();
        }
      };
      next();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 20000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// What VS Code would do with the WorkspaceEdits the fake host recorded: write them to disk.
function applyToDisk(e: WorkspaceEdit): void {
  for (const c of e.created) if (!fs.existsSync(c.uri.fsPath)) fs.writeFileSync(c.uri.fsPath, '');
  const byFile = new Map<string, typeof e.edits>();
  for (const x of e.edits) byFile.set(x.uri.fsPath, [...(byFile.get(x.uri.fsPath) ?? []), x]);
  for (const [file, edits] of byFile) {
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, applyTextEdits(text, edits.map((x) => ({ range: x.range, newText: x.newText }))));
  }
}

describe('agent mode in the fake VS Code host against `latent lsp` (scripted OpenAI server)', function () {
  this.timeout(60000);
  let host: Host;
  let server: http.Server | undefined;
  const seen: ChatBody[] = [];
  let tmp: string;
  let ws: string;
  let extension: { activate(c: unknown): Promise<void>; deactivate(): Promise<void> } | undefined;
  let savedCache: string | undefined;
  const posted: HostMessage[] = [];
  let fire: (m: unknown) => void = () => undefined;

  before(async function () {
    if (!fs.existsSync(binary)) {
      if (process.env.LATENT_TEST_ALLOW_SKIP === '1') {
        console.log(`    (skipped: no server at ${binary}; LATENT_TEST_ALLOW_SKIP=1)`);
        this.skip();
      }
      throw new Error(`no latent binary at ${binary}: build it (scripts/setup) or set LATENT_BIN`);
    }
    assert.ok(fs.existsSync(bundle), 'dist/extension.js: run the build first');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latent-agent-'));
    ws = path.join(tmp, 'ws');
    fs.mkdirSync(path.join(ws, 'src'), { recursive: true });
    fs.writeFileSync(path.join(ws, 'src', 'config.ts'), kConfig);
    fs.writeFileSync(path.join(ws, 'src', 'util.ts'), kUtil);
    savedCache = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = path.join(tmp, 'cache');
    server = await scriptedOpenAI(seen);
    const port = (server.address() as AddressInfo).port;
    host = makeHost(bundle);
    Object.assign(host.config, {
      'latent.path': binary,
      'latent.backend': 'remote',
      'latent.remote.url': `http://127.0.0.1:${port}`,
      'latent.remote.model': 'scripted',
      'latent.index.enabled': true,
    });
    (host.vscode.workspace as { workspaceFolders: unknown }).workspaceFolders = [{ uri: Uri.file(ws), name: 'ws', index: 0 }];
    extension = loadExtension(host, bundle);
    await extension.activate(host.context(ext, path.join(tmp, 'storage')));
    // The server must speak agent mode (latent/prompts is part of it).
    const exec = (c: string) => (host.vscode.commands as { executeCommand: (c: string) => Promise<unknown> }).executeCommand(c);
    const status = await until('the index', async () => {
      await exec('latent.showStatus');
      const s = JSON.parse(host.opened[host.opened.length - 1]?.content ?? '{}') as { index?: { state: string }[] };
      return s.index?.[0]?.state === 'ready' ? s : undefined;
    });
    assert.ok(status);
    const provider = host.webviewProviders.get('latent.chat')!;
    const incoming = new (host.vscode.EventEmitter as new () => { event: unknown; fire(x: unknown): void })();
    fire = (x) => incoming.fire(x);
    provider.resolveWebviewView({
      webview: {
        options: {},
        html: '',
        cspSource: 'vscode-webview://test',
        asWebviewUri: (u: Uri) => u,
        postMessage: (msg: HostMessage) => (posted.push(msg), Promise.resolve(true)),
        onDidReceiveMessage: incoming.event,
      },
      onDidDispose: () => ({ dispose: () => undefined }),
    });
    fire({ type: 'ready' });
    fire({ type: 'prompts' });
    const prompts = await until('the prompt list', () => posted.find((x) => x.type === 'prompts'));
    if (prompts.type === 'prompts' && !prompts.prompts.length) {
      console.log(`    (skipped: ${binary} answers no latent/prompts: agent mode has not landed in it)`);
      this.skip();
    }
  });

  after(async () => {
    await extension?.deactivate();
    server?.close();
    if (savedCache === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = savedCache;
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const fileUri = (rel: string) => pathToFileURL(path.join(ws, rel)).toString();
  let review: ReviewView;

  it('streams the steps, then proposes the two edits without writing anything', async () => {
    fire({ type: 'mode', mode: 'agent' });
    fire({ type: 'send', text: 'Make parse_config refuse an empty file, and make trimmed() trim.', includeSelection: false, includeFile: false });
    const end = await until('the answer', () => posted.find((x) => x.type === 'end'), 30000);
    assert.deepEqual(end, { type: 'end' }, JSON.stringify(posted.filter((x) => x.type === 'end')));
    const steps = posted.filter((x): x is { type: 'step'; step: ViewStep } => x.type === 'step').map((x) => x.step);
    // Each step arrives when it starts and again when it ends, in order.
    assert.deepEqual(
      steps.map((s) => `${s.id} ${s.tool} ${s.status}`),
      [
        '1 search_code running',
        '1 search_code done',
        '2 read_file running',
        '2 read_file done',
        '3 edit_file running',
        '3 edit_file done',
        '4 edit_file running',
        '4 edit_file done',
      ],
    );
    const read = steps.find((s) => s.id === 2 && s.status === 'done')!;
    assert.match(read.title, /src\/config\.ts/);
    assert.ok(read.sources?.some((s) => s.uri === fileUri('src/config.ts')), JSON.stringify(read.sources));
    assert.match(steps.find((s) => s.id === 3 && s.status === 'done')!.title, /src\/config\.ts/);
    // The tool results went back to the model: the file's text for read_file.
    const last = seen[seen.length - 1]!;
    const results = last.messages.filter((x) => x.role === 'tool');
    assert.equal(results.length, 4);
    assert.match(results[1]!.content!, /parse_config\(text: string\)/);
    assert.ok(last.tools?.some((t) => t.function.name === 'edit_file'));
    // The answer and the proposal.
    const text = posted.filter((x): x is { type: 'delta'; text: string } => x.type === 'delta').map((x) => x.text).join('');
    assert.equal(text, kAnswer);
    const p = posted.find((x) => x.type === 'proposal');
    assert.ok(p && p.type === 'proposal', 'a proposal');
    review = p.proposal;
    assert.deepEqual(
      review.files.map((f) => [f.path, f.created, f.added, f.removed, f.state]),
      [
        ['src/config.ts', false, 1, 0, 'pending'],
        ['src/util.ts', false, 1, 1, 'pending'],
      ],
    );
    assert.deepEqual(review.files.map((f) => f.uri), [fileUri('src/config.ts'), fileUri('src/util.ts')]);
    assert.deepEqual(host.applied, [], 'nothing applied before the user accepts');
    assert.equal(fs.readFileSync(path.join(ws, 'src', 'config.ts'), 'utf8'), kConfig, 'nothing written');
  });

  it('View diff opens the file against the proposed text', async () => {
    fire({ type: 'review', action: 'diff', id: review.id, uri: review.files[0]!.uri });
    const diff = await until('the diff', () => host.executed.find((e) => e.command === 'vscode.diff'));
    const [left, right] = diff.args as [Uri, Uri];
    assert.equal(left.fsPath, path.join(ws, 'src', 'config.ts'));
    assert.equal(right.scheme, 'latent-proposed');
  });

  it('accepting applies a file; a file changed since the proposal is refused', async () => {
    fire({ type: 'review', action: 'accept', id: review.id, uri: review.files[0]!.uri });
    await until('the first file accepted', () => posted.some((x) => x.type === 'fileState' && x.state === 'accepted'));
    assert.equal(host.applied.length, 1);
    applyToDisk(host.applied[0] as unknown as WorkspaceEdit);
    assert.equal(fs.readFileSync(path.join(ws, 'src', 'config.ts'), 'utf8'), kConfig.replace(kConfigOld, kConfigNew));
    // util.ts changes under the proposal: Accept all refuses it and writes nothing.
    fs.writeFileSync(path.join(ws, 'src', 'util.ts'), kUtil + '// edited meanwhile\n');
    fire({ type: 'reviewAll', action: 'accept', id: review.id });
    const refused = await until('the refusal', () => posted.find((x) => x.type === 'fileState' && x.state === 'changed'));
    assert.ok(refused.type === 'fileState' && refused.uri === review.files[1]!.uri && /changed since the proposal/.test(refused.note ?? ''));
    assert.equal(host.applied.length, 1, 'nothing more applied');
  });

  it('a second run proposes again, and Accept all applies it', async () => {
    fs.writeFileSync(path.join(ws, 'src', 'config.ts'), kConfig);
    fs.writeFileSync(path.join(ws, 'src', 'util.ts'), kUtil);
    posted.length = 0;
    fire({ type: 'clear' });
    fire({ type: 'mode', mode: 'agent' });
    fire({ type: 'send', text: 'Again, please.', includeSelection: false, includeFile: false });
    const p = await until('the proposal', () => posted.find((x) => x.type === 'proposal'), 30000);
    assert.ok(p.type === 'proposal');
    fire({ type: 'reviewAll', action: 'accept', id: p.proposal.id });
    await until('both accepted', () => posted.filter((x) => x.type === 'fileState' && x.state === 'accepted').length === 2);
    const e = host.applied[host.applied.length - 1] as unknown as WorkspaceEdit;
    assert.equal(e.edits.length, 2, 'both files in one edit');
    applyToDisk(e);
    assert.equal(fs.readFileSync(path.join(ws, 'src', 'config.ts'), 'utf8'), kConfig.replace(kConfigOld, kConfigNew));
    assert.equal(fs.readFileSync(path.join(ws, 'src', 'util.ts'), 'utf8'), kUtil.replace(kUtilOld, kUtilNew));
  });

  it('@file: and @symbol: complete from the server, / lists its prompts, and both reach the model', async () => {
    posted.length = 0;
    // One query at a time: a newer one cancels the one before (as typing does).
    fire({ type: 'mentionQuery', kind: 'file', query: 'conf', seq: 41 });
    const files = await until('file items', () => posted.find((x) => x.type === 'mentionItems' && x.seq === 41));
    fire({ type: 'mentionQuery', kind: 'symbol', query: 'parse_con', seq: 42 });
    const symbols = await until('symbol items', () => posted.find((x) => x.type === 'mentionItems' && x.seq === 42));
    fire({ type: 'prompts' });
    assert.ok(files.type === 'mentionItems' && files.items.some((i) => i.label === 'src/config.ts'), JSON.stringify(files));
    assert.ok(symbols.type === 'mentionItems' && symbols.items.some((i) => i.label === 'parse_config'), JSON.stringify(symbols));
    const prompts = await until('the prompts', () => posted.find((x) => x.type === 'prompts'));
    const names = prompts.type === 'prompts' ? prompts.prompts.map((p) => p.name) : [];
    for (const n of ['explain', 'refactor', 'tests', 'docs', 'fix', 'review']) assert.ok(names.includes(n), names.join());
    // A chat-mode question with a prompt and an @file mention: the model sees the file.
    fire({ type: 'mode', mode: 'chat' });
    const before = seen.length;
    fire({
      type: 'send',
      text: 'the parser',
      includeSelection: false,
      includeFile: false,
      prompt: 'explain',
      mentions: [{ kind: 'file', uri: fileUri('src/util.ts') }],
    });
    await until('the answer', () => posted.find((x) => x.type === 'end'), 30000);
    const body = seen[seen.length - 1]!;
    assert.ok(seen.length > before);
    assert.ok(!body.tools?.length, 'chat mode offers no tools');
    const all = body.messages.map((m) => m.content ?? '').join('\n');
    assert.match(all, /export function trimmed/, 'the mentioned file is in the prompt');
    assert.match(all, /the parser/, 'the words after /explain are in the prompt');
    const sources = posted.find((x) => x.type === 'sources');
    assert.ok(sources && sources.type === 'sources' && sources.sources.some((s) => s.uri === fileUri('src/util.ts')), JSON.stringify(sources));
  });

  it('Latent: Run Prompt… runs the picked prompt on the selection, in the chat', async () => {
    posted.length = 0;
    const text = fs.readFileSync(path.join(ws, 'src', 'config.ts'), 'utf8');
    const doc = new TextDocument(Uri.file(path.join(ws, 'src', 'config.ts')), text, 'typescript');
    host.openDocument(doc);
    host.activeTextEditor = { document: doc, selection: new Selection(4, 0, 7, 0), selections: [new Selection(4, 0, 7, 0)] };
    host.answers.push('tests');
    const before = seen.length;
    await (host.vscode.commands as { executeCommand: (c: string) => Promise<unknown> }).executeCommand('latent.runPrompt');
    await until('the answer', () => posted.find((x) => x.type === 'end'), 30000);
    const pick = host.messages.find((m) => m.level === 'pick');
    assert.ok(pick, 'a quick pick of the prompts');
    assert.ok(posted.some((x) => x.type === 'turn' && x.turn.content === '/tests'));
    assert.ok(host.executed.some((e) => e.command === 'latent.chat.focus'));
    assert.ok(seen.length > before);
    const all = seen[seen.length - 1]!.messages.map((m) => m.content ?? '').join('\n');
    assert.match(all, /export function parse_config/, 'the selection is in the prompt');
  });
});
