// The chat page in real headless Chromium (Debian's /usr/bin/chromium through playwright-
// core): the HTML the view serves, the bundled script and style sheet, a stub of VS Code's
// webview API. Every request the page makes is intercepted; only the three files exist.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';
import { chatHtml } from '../../src/chat/html';

const root = path.resolve(__dirname, '../../..');
const origin = 'http://webview.test';
const chromiumPath = process.env.LATENT_CHROMIUM ?? '/usr/bin/chromium';
const files: Record<string, { type: string; file: string }> = {
  '/dist/webview/chat.js': { type: 'text/javascript', file: path.join(root, 'dist/webview/chat.js') },
  '/media/chat.css': { type: 'text/css', file: path.join(root, 'media/chat.css') },
};

// What the stub of acquireVsCodeApi() records.
declare global {
  interface Window {
    posted: unknown[];
    pwned?: unknown;
  }
}

describe('chat webview in Chromium', function () {
  let browser: Browser | undefined;
  let page: Page;
  let requests: string[] = [];
  let blocked: string[] = [];

  before(async function () {
    if (!fs.existsSync(chromiumPath)) {
      if (process.env.LATENT_TEST_ALLOW_SKIP === '1') {
        console.log(`    (skipped: no Chromium at ${chromiumPath}; LATENT_TEST_ALLOW_SKIP=1)`);
        this.skip();
      }
      throw new Error(`no Chromium at ${chromiumPath}: run scripts/setup (apt package chromium)`);
    }
    assert.ok(fs.existsSync(files['/dist/webview/chat.js']!.file), 'dist/webview/chat.js: run `npm run build` first');
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'], headless: true });
  });

  after(async () => {
    await browser?.close();
  });

  beforeEach(async () => {
    requests = [];
    blocked = [];
    page = await browser!.newPage({ viewport: { width: 420, height: 640 } });
    await page.route('**/*', async (route) => {
      const url = route.request().url();
      requests.push(url);
      const u = new URL(url);
      if (u.origin === origin && u.pathname === '/index.html') {
        const html = chatHtml({
          cspSource: origin,
          nonce: 'dGVzdC1ub25jZS0xMjM0NQ==',
          scriptUri: `${origin}/dist/webview/chat.js`,
          styleUri: `${origin}/media/chat.css`,
        });
        return route.fulfill({ status: 200, contentType: 'text/html', body: html });
      }
      const f = u.origin === origin ? files[u.pathname] : undefined;
      if (f) return route.fulfill({ status: 200, contentType: f.type, body: fs.readFileSync(f.file) });
      blocked.push(url);
      return route.abort();
    });
    await page.addInitScript(() => {
      window.posted = [];
      let state: unknown;
      (window as unknown as { acquireVsCodeApi: () => unknown }).acquireVsCodeApi = () => ({
        postMessage: (m: unknown) => window.posted.push(m),
        getState: () => state,
        setState: (s: unknown) => (state = s),
      });
    });
    await page.goto(`${origin}/index.html`);
    await page.waitForFunction(() => window.posted.some((m) => (m as { type: string }).type === 'ready'));
  });

  afterEach(async () => {
    await page.close();
    const outside = requests.filter((r) => !r.startsWith(origin + '/'));
    assert.deepEqual(outside, [], 'the page requested something outside the extension');
    assert.deepEqual(blocked, [], 'the page asked for a file that does not exist');
  });

  const host = (p: Page, m: unknown) => p.evaluate((msg) => window.postMessage(msg, '*'), m);
  const posted = (p: Page) => p.evaluate(() => window.posted as { type: string; [k: string]: unknown }[]);

  async function stream(p: Page, pieces: string[], end: unknown = { type: 'end' }) {
    await host(p, { type: 'begin' });
    for (const text of pieces) await host(p, { type: 'delta', text });
    await host(p, end);
  }

  it('streams an answer in as Markdown with highlighted code', async () => {
    await host(page, { type: 'history', turns: [], busy: false, mode: 'chat' });
    await host(page, { type: 'turn', turn: { role: 'user', content: 'How do I sum a vector?' } });
    await host(page, { type: 'begin' });
    assert.equal(await page.isVisible('#stop'), true, 'Stop shows while streaming');
    await host(page, { type: 'delta', text: 'Use **std::accumulate**:\n\n```cpp\n#include <numeric>\n' });
    await page.waitForSelector('.message.assistant strong');
    await host(page, { type: 'delta', text: 'int sum(const std::vector<int>& v) {\n  return std::accumulate(v.begin(), v.end(), 0);\n}\n```\n' });
    await host(page, { type: 'end' });
    await page.waitForSelector('.message.assistant pre code .hljs-keyword');
    assert.equal(await page.isVisible('#stop'), false);
    const code = await page.textContent('.message.assistant pre code');
    assert.match(code!, /std::accumulate\(v\.begin\(\), v\.end\(\), 0\)/);
    assert.equal(await page.textContent('.message.assistant strong'), 'std::accumulate');
    assert.equal(await page.textContent('.message.user .body'), 'How do I sum a vector?');
  });

  it('code block buttons, send, toggles and stop post the right messages', async () => {
    await stream(page, ['```python\nprint("hi")\n```\n']);
    await page.click('.code-actions .copy');
    await page.click('.code-actions .insert');
    await page.fill('#input', 'explain this');
    await page.check('#include-file');
    await page.press('#input', 'Enter');
    await host(page, { type: 'begin' });
    await page.click('#stop');
    const p = (await posted(page)).filter((m) => m.type !== 'prompts');
    assert.deepEqual(p.slice(1), [
      { type: 'copy', code: 'print("hi")\n' },
      { type: 'insert', code: 'print("hi")\n' },
      { type: 'send', text: 'explain this', includeSelection: true, includeFile: true },
      { type: 'stop' },
    ]);
    assert.equal(await page.inputValue('#input'), '');
  });

  it('renders a hostile answer inert', async () => {
    const hostile = [
      '<script>window.pwned = "script"</script>',
      '<img src="http://evil.test/a.png" onerror="window.pwned = \'onerror\'">',
      '[click me](javascript:window.pwned="link") [data](data:text/html,<script>alert(1)</script>)',
      '![tracker](http://evil.test/pixel.png)',
      '<a href="http://evil.test" onclick="window.pwned=\'onclick\'">raw link</a>',
      '<iframe src="http://evil.test/frame"></iframe><style>body{display:none}</style>',
      '<svg onload="window.pwned=\'svg\'"></svg>',
      '[ok](https://example.com/docs)',
    ].join('\n\n');
    await stream(page, [hostile.slice(0, 40), hostile.slice(40)]);
    await page.waitForSelector('.message.assistant a');
    const found = await page.evaluate(() => {
      const log = document.getElementById('log')!;
      return {
        dangerous: log.querySelectorAll('script, img, iframe, style, svg, object, embed, form').length,
        handlers: Array.from(log.querySelectorAll('*')).filter((e) => Array.from(e.attributes).some((a) => a.name.startsWith('on'))).length,
        hrefs: Array.from(log.querySelectorAll('a')).map((a) => a.getAttribute('href')),
        text: log.textContent,
      };
    });
    assert.equal(found.dangerous, 0);
    assert.equal(found.handlers, 0);
    // Only http(s) links survive (linkify turns URLs shown as text into links; clicking one
    // in VS Code asks before opening it outside). No javascript: or data: link.
    const hrefs = found.hrefs.filter((h) => h !== null);
    assert.ok(hrefs.includes('https://example.com/docs'));
    for (const h of hrefs) assert.match(h, /^https?:\/\//);
    assert.match(found.text, /<script>window\.pwned/, 'raw HTML is shown as text');
    for (const a of await page.$$('.message.assistant a:not([href])')) await a.click();
    await page.waitForTimeout(100);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
  });

  it('ignores malformed messages from the host', async () => {
    await stream(page, ['first']);
    const before = await page.innerHTML('#log');
    for (const m of [{ type: 'delta', text: 5 }, { type: 'turn', turn: { role: 'system', content: 'x' } }, { type: 'html', html: '<b>x</b>' }, 'begin', null]) {
      await host(page, m);
    }
    // Messages are handled in order: once this one shows, the bad ones were seen.
    await host(page, { type: 'turn', turn: { role: 'user', content: 'marker' } });
    await page.waitForSelector('.message.user');
    await page.evaluate(() => document.querySelector('.message.user')!.remove());
    assert.equal(await page.innerHTML('#log'), before);
  });

  it('restores the conversation from history and shows errors', async () => {
    await host(page, {
      type: 'history',
      turns: [
        { role: 'user', content: 'What is MLA?' },
        { role: 'assistant', content: 'Multi-head **latent** attention.' },
      ],
      busy: false,
      mode: 'chat',
    });
    await stream(page, [], { type: 'end', error: 'no backend is ready yet' });
    assert.equal(await page.locator('.message').count(), 3);
    assert.equal(await page.textContent('.message.error .body'), 'no backend is ready yet');
  });

  it('writes a screenshot of a conversation', async () => {
    await host(page, {
      type: 'history',
      turns: [{ role: 'user', content: 'Explain latent_cache.cpp, lines 40–52' }],
      busy: false,
      mode: 'chat',
    });
    await stream(page, [
      'This loop **appends one token** to the compressed KV cache: for each layer it writes the latent ',
      '`c_kv` row and the rope key `k_pe` into the current page, opening a new page when the last one is full.\n\n',
      '```cpp\nif (used_ % kPageTokens == 0)\n  pages_.push_back(pool_.take());\n',
      '// one row per token and layer\nstd::copy(c_kv.begin(), c_kv.end(), row(used_++));\n```\n\n',
      'Pages are reference-counted, so a shared prefix is stored once.',
    ]);
    await page.fill('#input', 'Why pages of 16 tokens?');
    const out = path.join(root, 'test-output');
    fs.mkdirSync(out, { recursive: true });
    const png = await page.screenshot({ path: path.join(out, 'chat.png') });
    assert.ok(png.length > 5000);
    if (process.env.LATENT_UPDATE_SCREENSHOT === '1') fs.writeFileSync(path.join(root, 'media/chat.png'), png);
  });

  // ---- agent mode ----------------------------------------------------------------------

  const range = (a: number, b: number) => ({ start: { line: a, character: 0 }, end: { line: b, character: 0 } });
  const src = (path: string, a: number, b: number, why: string) => ({ uri: `file:///ws/${path}`, path, range: range(a, b), why });
  const kSteps = [
    { id: 1, tool: 'search_code', title: 'Searched “parse_config”', status: 'done', detail: 'src/config.ts:12  export function parse_config(text: string): Config {\nsrc/main.ts:40  const cfg = parse_config(raw);', sources: [src('src/config.ts', 11, 30, 'search: parse_config')] },
    { id: 2, tool: 'read_file', title: 'Read src/config.ts lines 1–60', status: 'done', detail: '1  import { readFileSync } from "node:fs";\n2  …', sources: [src('src/config.ts', 0, 60, 'read by the agent')] },
    { id: 3, tool: 'read_file', title: 'Read ../../etc/passwd', status: 'refused', detail: 'refused: the path is outside the workspace folders' },
    { id: 4, tool: 'edit_file', title: 'Proposed an edit to src/config.ts', status: 'done' },
    { id: 5, tool: 'create_file', title: 'Proposed a new file src/config.test.ts', status: 'done' },
  ];
  const kProposal = {
    id: 7,
    files: [
      { uri: 'file:///ws/src/config.ts', path: 'src/config.ts', created: false, added: 9, removed: 3, state: 'pending' },
      { uri: 'file:///ws/src/config.test.ts', path: 'src/config.test.ts', created: true, added: 24, removed: 0, state: 'pending' },
    ],
  };
  const notReady = (m: { type: string }) => m.type !== 'ready' && m.type !== 'prompts';

  it('shows agent steps as they stream: a spinner while running, collapsible details', async () => {
    await host(page, { type: 'history', turns: [], busy: false, mode: 'agent' });
    await host(page, { type: 'begin' });
    await host(page, { type: 'step', step: { id: 1, tool: 'search_code', title: 'Searching “parse_config”', status: 'running' } });
    await page.waitForSelector('details.step.running .icon');
    const spinning = await page.evaluate(() => getComputedStyle(document.querySelector('details.step.running .icon')!, '::before').animationName);
    assert.equal(spinning, 'spin');
    await host(page, { type: 'step', step: kSteps[0] });
    await host(page, { type: 'step', step: kSteps[2] });
    await page.waitForSelector('details.step.refused');
    assert.equal(await page.locator('details.step').count(), 2, 'a step is updated in place');
    assert.deepEqual(await page.locator('details.step .title').allTextContents(), ['Searched “parse_config”', 'Read ../../etc/passwd']);
    assert.equal(await page.textContent('details.step[data-id="1"] .icon'), '✓');
    // Collapsed: the title only. A click opens it; the detail and its sources show.
    assert.equal(await page.isVisible('details.step[data-id="1"] .detail'), false);
    await page.click('details.step[data-id="1"] summary');
    assert.equal(await page.isVisible('details.step[data-id="1"] .detail'), true);
    assert.match((await page.textContent('details.step[data-id="1"] .detail'))!, /export function parse_config/);
    await page.click('details.step[data-id="1"] .source-list button.source');
    // An update keeps it open; a second click closes it.
    await host(page, { type: 'step', step: { ...kSteps[0], title: 'Searched “parse_config” (2 hits)' } });
    await page.waitForFunction(() => /2 hits/.test(document.querySelector('details.step[data-id="1"] .title')?.textContent ?? ''));
    assert.equal(await page.isVisible('details.step[data-id="1"] .detail'), true);
    await page.click('details.step[data-id="1"] summary');
    assert.equal(await page.isVisible('details.step[data-id="1"] .detail'), false);
    await host(page, { type: 'delta', text: 'Fixed.' });
    await host(page, { type: 'end', stopReason: 'stepLimit' });
    assert.match((await page.textContent('.stop-note'))!, /step limit/);
    const p = (await posted(page)).filter(notReady);
    assert.deepEqual(p, [{ type: 'openSource', uri: 'file:///ws/src/config.ts', range: range(11, 30) }]);
  });

  it('lists the sources under the answer; a click opens the file at the range', async () => {
    await host(page, { type: 'begin' });
    await host(page, { type: 'sources', sources: [src('src/a.ts', 9, 40, '@file'), src('src/b.ts', 3, 3, 'definition of Foo')] });
    await host(page, { type: 'delta', text: 'It parses.' });
    await host(page, { type: 'end' });
    assert.equal(await page.textContent('.message.assistant .sources .label'), 'Sources (2)');
    assert.deepEqual(await page.locator('.message.assistant > .sources button.source').allTextContents(), ['src/a.ts:10–40', 'src/b.ts:4']);
    assert.deepEqual(await page.locator('.message.assistant > .sources .why').allTextContents(), ['@file', 'definition of Foo']);
    await page.click('.sources button.source >> nth=1');
    const p = (await posted(page)).filter(notReady);
    assert.deepEqual(p, [{ type: 'openSource', uri: 'file:///ws/src/b.ts', range: range(3, 3) }]);
  });

  it('the review list: per-file View diff, Accept, Reject, then Accept all / Reject all; states update', async () => {
    await host(page, { type: 'begin' });
    await host(page, { type: 'delta', text: 'Two files.' });
    await host(page, { type: 'proposal', proposal: kProposal });
    await host(page, { type: 'end' });
    assert.equal(await page.textContent('.review .label'), 'Proposed changes (2 files)');
    assert.deepEqual(await page.locator('.review .file .path').allTextContents(), ['src/config.ts', 'src/config.test.ts']);
    assert.deepEqual(await page.locator('.review .file .counts').allTextContents(), ['+9−3', '+24−0']);
    assert.equal(await page.textContent('.review .file >> nth=1 >> .badge'), 'new');
    const first = '.review .file[data-uri="file:///ws/src/config.ts"]';
    const second = '.review .file[data-uri="file:///ws/src/config.test.ts"]';
    await page.click(`${first} button.diff`);
    await page.click(`${first} button.accept`);
    await page.click(`${second} button.reject`);
    await page.click('.review button.accept-all');
    await page.click('.review button.reject-all');
    const uri1 = 'file:///ws/src/config.ts';
    const uri2 = 'file:///ws/src/config.test.ts';
    assert.deepEqual((await posted(page)).filter(notReady), [
      { type: 'review', action: 'diff', id: 7, uri: uri1 },
      { type: 'review', action: 'accept', id: 7, uri: uri1 },
      { type: 'review', action: 'reject', id: 7, uri: uri2 },
      { type: 'reviewAll', action: 'accept', id: 7 },
      { type: 'reviewAll', action: 'reject', id: 7 },
    ]);
    // The extension answers with each file's state.
    await host(page, { type: 'fileState', id: 7, uri: uri1, state: 'changed', note: 'src/config.ts changed since the proposal; not applied.' });
    await page.waitForSelector(`${first}.changed`);
    assert.equal(await page.locator(`${first} button.accept`).count(), 0, 'no Accept once decided');
    assert.equal(await page.locator(`${first} button.diff`).count(), 1, 'the diff stays viewable');
    assert.equal(await page.textContent(`${first} .note`), 'src/config.ts changed since the proposal; not applied.');
    assert.equal(await page.locator('.review button.accept-all').count(), 1, 'one file still pending');
    await host(page, { type: 'fileState', id: 7, uri: '', state: 'accepted' });
    await page.waitForSelector(`${second}.accepted`);
    assert.equal(await page.textContent(`${second} .state`), 'Accepted');
    assert.equal(await page.locator('.review button.accept-all').count(), 0, 'nothing pending: no Accept all');
  });

  it('@ offers the mention kinds, @file: asks the server as you type, and the pick becomes a chip', async () => {
    await page.click('#input');
    await page.keyboard.type('what does @');
    await page.waitForSelector('#popup:not([hidden])');
    assert.deepEqual(await page.locator('#popup .label').allTextContents(), ['@file', '@symbol', '@codebase', '@openEditors']);
    await page.keyboard.type('fi');
    assert.deepEqual(await page.locator('#popup .label').allTextContents(), ['@file']);
    await page.keyboard.press('Enter');
    assert.equal(await page.inputValue('#input'), 'what does @file:');
    await page.keyboard.type('conf', { delay: 20 });
    // Debounced: one query for the whole word, once typing pauses.
    await page.waitForFunction(() => window.posted.some((m) => (m as { type: string }).type === 'mentionQuery'));
    await page.waitForTimeout(250);
    const queries = (await posted(page)).filter((m) => m.type === 'mentionQuery');
    assert.equal(queries.length, 1, JSON.stringify(queries));
    assert.equal(queries[0]!.kind, 'file');
    assert.equal(queries[0]!.query, 'conf');
    // An answer to an older query is ignored; the current one shows.
    await host(page, { type: 'mentionItems', seq: (queries[0]!.seq as number) - 1, items: [{ label: 'stale.ts', detail: '', uri: 'file:///ws/stale.ts' }] });
    await host(page, {
      type: 'mentionItems',
      seq: queries[0]!.seq,
      items: [
        { label: 'src/config.ts', detail: '', uri: 'file:///ws/src/config.ts' },
        { label: 'src/config.test.ts', detail: '', uri: 'file:///ws/src/config.test.ts' },
      ],
    });
    await page.waitForFunction(() => document.querySelectorAll('#popup .label').length === 2);
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    assert.equal(await page.inputValue('#input'), 'what does ');
    assert.deepEqual(await page.locator('#chips .chip .name').allTextContents(), ['@src/config.test.ts']);
    // @codebase becomes a chip at once; @symbol: asks for symbols.
    await page.keyboard.type('@code');
    await page.keyboard.press('Tab');
    await page.keyboard.type('@symbol:parse');
    await page.waitForFunction(() => window.posted.filter((m) => (m as { type: string }).type === 'mentionQuery').length === 2);
    const q2 = (await posted(page)).filter((m) => m.type === 'mentionQuery')[1]!;
    assert.deepEqual([q2.kind, q2.query], ['symbol', 'parse']);
    await host(page, { type: 'mentionItems', seq: q2.seq, items: [{ label: 'parse_config', detail: 'function src/config.ts:12', uri: 'file:///ws/src/config.ts' }] });
    await page.waitForSelector('#popup .detail');
    await page.keyboard.press('Enter');
    assert.deepEqual(await page.locator('#chips .chip .name').allTextContents(), ['@src/config.test.ts', '@codebase', '@parse_config']);
    await page.click('#chips .chip >> nth=1 >> button.remove');
    await page.click('#input');
    await page.keyboard.type('mean?');
    await page.keyboard.press('Enter');
    const send = (await posted(page)).filter((m) => m.type === 'send');
    assert.deepEqual(send, [
      {
        type: 'send',
        text: 'what does mean?',
        includeSelection: true,
        includeFile: false,
        mentions: [{ kind: 'file', uri: 'file:///ws/src/config.test.ts' }, { kind: 'symbol', name: 'parse_config' }],
      },
    ]);
    assert.equal(await page.locator('#chips .chip').count(), 0, 'chips go with the question');
  });

  it('/ lists the prompts and /name sends the prompt with the rest as the question', async () => {
    assert.ok((await posted(page)).some((m) => m.type === 'prompts'), 'the page asks for the prompt list');
    await host(page, {
      type: 'prompts',
      prompts: [
        { name: 'explain', description: 'Explain the selected code' },
        { name: 'tests', description: 'Write tests for it' },
        { name: 'my-review', description: 'Our team review checklist' },
      ],
    });
    await page.click('#input');
    await page.keyboard.type('/');
    await page.waitForSelector('#popup:not([hidden])');
    assert.deepEqual(await page.locator('#popup .label').allTextContents(), ['/explain', '/tests', '/my-review']);
    assert.deepEqual(await page.locator('#popup .detail').allTextContents(), ['Explain the selected code', 'Write tests for it', 'Our team review checklist']);
    await page.keyboard.type('t');
    assert.deepEqual(await page.locator('#popup .label').allTextContents(), ['/tests']);
    await page.keyboard.press('Enter');
    assert.equal(await page.inputValue('#input'), '/tests ');
    await page.keyboard.type('with edge cases');
    await page.keyboard.press('Enter');
    await page.fill('#input', '/explain');
    await page.keyboard.press('Escape');
    await page.press('#input', 'Enter');
    await page.fill('#input', '/unknown thing');
    await page.press('#input', 'Enter');
    const send = (await posted(page)).filter((m) => m.type === 'send');
    assert.deepEqual(send, [
      { type: 'send', text: 'with edge cases', includeSelection: true, includeFile: false, prompt: 'tests' },
      { type: 'send', text: '', includeSelection: true, includeFile: false, prompt: 'explain' },
      { type: 'send', text: '/unknown thing', includeSelection: true, includeFile: false },
    ]);
  });

  it('the mode switch posts the mode, and shows the conversation\'s mode', async () => {
    assert.equal(await page.getAttribute('#mode-chat', 'aria-checked'), 'true');
    await page.click('#mode-agent');
    assert.equal(await page.getAttribute('#mode-agent', 'aria-checked'), 'true');
    assert.equal(await page.getAttribute('#mode-chat', 'aria-checked'), 'false');
    await page.click('#mode-agent'); // already on: nothing posted
    await page.click('#mode-chat');
    assert.deepEqual((await posted(page)).filter(notReady), [
      { type: 'mode', mode: 'agent' },
      { type: 'mode', mode: 'chat' },
    ]);
    // Messages from the host arrive as events: wait for each to show.
    await host(page, { type: 'history', turns: [], busy: false, mode: 'agent' });
    await page.waitForSelector('#mode-agent[aria-checked="true"]');
    assert.equal(await page.getAttribute('#mode-chat', 'aria-checked'), 'false');
    await host(page, { type: 'mode', mode: 'chat' });
    await page.waitForSelector('#mode-chat[aria-checked="true"]');
  });

  // VS Code's default sidebar is about 300 px wide: the composer's controls wrap onto more
  // lines rather than clip (the real editor showed "Agent" cut off and "Chat" half hidden).
  it('at the default sidebar width every composer control is whole and visible', async () => {
    for (const width of [260, 300]) {
      await page.setViewportSize({ width, height: 640 });
      for (const id of ['#mode-chat', '#mode-agent', '#include-selection', '#include-file', '#send']) {
        const whole = await page.$eval(id, (el) => {
          const box = (el.closest('label') ?? el).getBoundingClientRect();
          if (box.width <= 0 || box.left < 0 || box.right > window.innerWidth + 0.5) return false;
          // not cut by an ancestor that clips, nor by its own width (text wider than the box)
          for (let a = el.parentElement; a; a = a.parentElement) {
            if (getComputedStyle(a).overflowX === 'visible') continue;
            const c = a.getBoundingClientRect();
            if (box.left < c.left - 0.5 || box.right > c.right + 0.5) return false;
          }
          return el.scrollWidth <= el.clientWidth + 1;
        });
        assert.ok(whole, `${id} at ${width} px`);
      }
    }
    await page.setViewportSize({ width: 420, height: 640 });
  });

  it('restores an agent turn from history: steps, sources, review state', async () => {
    await host(page, {
      type: 'history',
      mode: 'agent',
      busy: false,
      turns: [
        { role: 'user', content: 'Make parse_config reject empty input' },
        {
          role: 'assistant',
          content: 'Done.',
          steps: kSteps,
          sources: [src('src/config.ts', 11, 30, 'search: parse_config')],
          proposal: { ...kProposal, files: [{ ...kProposal.files[0]!, state: 'accepted' }, kProposal.files[1]!] },
          stopReason: 'answer',
        },
      ],
    });
    await page.waitForSelector('.review .file.accepted');
    assert.equal(await page.locator('.message.assistant details.step').count(), 5);
    assert.equal(await page.locator('.message.assistant > .sources button.source').count(), 1);
    assert.equal(await page.textContent('.review .file.accepted .state'), 'Accepted');
    assert.equal(await page.locator('.review .file.pending button.accept').count(), 1);
  });

  it('writes a screenshot of agent mode (steps, sources, review list)', async () => {
    await page.setViewportSize({ width: 460, height: 780 });
    await host(page, {
      type: 'history',
      mode: 'agent',
      busy: false,
      turns: [{ role: 'user', content: 'parse_config should reject an empty file with a clear error, and add a test' }],
    });
    await host(page, { type: 'begin' });
    await host(page, { type: 'sources', sources: [src('src/config.ts', 11, 30, 'search: parse_config'), src('src/main.ts', 39, 41, 'definition of Config')] });
    for (const s of kSteps) await host(page, { type: 'step', step: s });
    await host(page, {
      type: 'delta',
      text: '`parse_config` now throws a `ConfigError` with the path when the text is empty or only whitespace, ' +
        'and a new test covers both cases. Review the two files below.',
    });
    await host(page, { type: 'proposal', proposal: kProposal });
    await host(page, { type: 'end' });
    await page.click('details.step[data-id="2"] summary');
    await page.fill('#input', 'Also handle a missing file @');
    await page.waitForSelector('#popup:not([hidden])');
    const out = path.join(root, 'test-output');
    fs.mkdirSync(out, { recursive: true });
    const png = await page.screenshot({ path: path.join(out, 'chat-agent.png') });
    assert.ok(png.length > 5000);
    if (process.env.LATENT_UPDATE_SCREENSHOT === '1') fs.writeFileSync(path.join(root, 'media/chat-agent.png'), png);
  });
});
