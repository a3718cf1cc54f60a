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
});
