// The extension in a real VS Code: code-server 4.100.3 (VS Code 1.100.3's workbench and
// extension host) in headless Chromium, the .vsix of this checkout, `latent lsp` with a
// tiny random-weight model. One session, steps in order: each `it` starts where the one
// before left the editor. Screenshots go to extension/test-output/e2e/.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Frame } from 'playwright-core';
import { kKeys, kSelectors } from './workbench';
import { kStatusItem, kWorkspace, latentComplete, Session, sessionOrSkip } from './session';
import { SlowOpenAI } from './slow-openai';

const kBackend = /Latent: local cpu tiny\.gguf/;

// The chat view's page (extension/src/chat/html.ts).
const kChat = {
  title: 'Chat',
  input: '#input',
  send: '#send',
  stop: '#stop',
  assistant: '.message.assistant .body',
  user: '.message.user .body',
  error: '.message.error .body',
};

async function bodyLength(frame: Frame, selector: string): Promise<number> {
  return frame.locator(selector).last().evaluate((e) => e.textContent?.length ?? 0);
}

// Waits until the last element matching `selector` holds more than `n` characters.
async function waitLonger(frame: Frame, selector: string, n: number, timeout = 30_000): Promise<number> {
  await frame.waitForFunction(
    ([sel, min]) => {
      const all = (globalThis as any).document.querySelectorAll(sel) as { textContent: string | null }[];
      return (all[all.length - 1]?.textContent?.length ?? 0) > min;
    },
    [selector, n] as const,
    { timeout },
  );
  return bodyLength(frame, selector);
}

describe('the extension in a real VS Code (code-server 4.100.3)', function () {
  let s: Session;
  const file = (name: string) => path.join(s.folders.workspace, name);

  before(async function () {
    this.timeout(180_000);
    s = await sessionOrSkip(this);
  });

  it('activates, starts latent lsp and loads the model: the status bar names the backend', async () => {
    await s.wb.waitStatus(kStatusItem, kBackend, 60_000);
    assert.equal(s.server.latentServerPids().length, 1);
  });

  // shapes.py's last line is "    " (inside total_area): the test types there.
  const line = 23;
  const typed = 'return ';
  const docText = () => {
    const lines = kWorkspace['shapes.py']!.split('\n');
    lines[line - 1] += typed;
    return lines.join('\n');
  };
  let ghost = '';

  it('shows ghost text after typing, the same text `latent complete` gives there', async () => {
    await s.wb.openFile('shapes.py');
    await s.wb.goTo(line, 5);
    await s.wb.type(typed);
    ghost = await s.wb.waitGhostText();
    await s.wb.screenshot('ghost-text');
    const expected = latentComplete(s, { ...kWorkspace, 'shapes.py': docText() }, 'shapes.py', line, 5 + typed.length);
    assert.ok(expected.length > 0, '`latent complete` gave no completion there: pick another position');
    assert.equal(ghost, expected);
  });

  it('Tab accepts it into the document; the status bar shows the backend and the latency', async () => {
    await s.wb.page.keyboard.press(kKeys.acceptInline);
    await s.wb.ghostLocator().waitFor({ state: 'detached' });
    await s.wb.page.keyboard.press(kKeys.save);
    await s.wb.page.locator(kSelectors.dirtyActiveTab).waitFor({ state: 'detached' });
    const lines = docText().split('\n');
    const [first, ...rest] = ghost.split('\n');
    lines[line - 1] += first!;
    lines.splice(line, 0, ...rest);
    assert.equal(fs.readFileSync(file('shapes.py'), 'utf8'), lines.join('\n'));
    const text = await s.wb.waitStatus(kStatusItem, /Latent: local cpu tiny\.gguf · \d+ ms/);
    assert.match(text, /· \d+ ms$/);
  });

  it('with inline completion turned off, typing shows no ghost text', async () => {
    await s.wb.command('Latent: Toggle Inline Completion');
    await s.wb.statusItem(kStatusItem).locator('.codicon-circle-slash').waitFor();
    assert.equal(JSON.parse(fs.readFileSync(s.folders.userSettings, 'utf8'))['latent.completion.enabled'], false);
    await s.wb.page.keyboard.press('Control+End');
    // Ends with a space: VS Code's word suggestions close (while they show, an inline
    // completion is shown inside their preview instead).
    await s.wb.type('total = 2 * ');
    await s.wb.page.locator(kSelectors.suggestWidget).waitFor({ state: 'hidden' });
    // Ghost text came ~100 ms after typing in the steps above; allow fifteen times that.
    await s.wb.expectNoGhostText(1500);
  });

  it('Alt+\\ asks for a completion by hand', async () => {
    await s.wb.page.keyboard.press(kKeys.triggerInline);
    assert.ok((await s.wb.waitGhostText()).length > 0);
    await s.wb.page.keyboard.press('Escape');
    await s.wb.ghostLocator().waitFor({ state: 'detached' });
    await s.wb.command('Latent: Toggle Inline Completion');
    await s.wb.statusItem(kStatusItem).locator('.codicon-sparkle').waitFor();
  });

  let chat: Frame;

  it('the chat view answers a question', async () => {
    await s.wb.openViewContainer('Latent');
    chat = await s.wb.webviewFrame(kChat.title);
    await chat.locator(kChat.input).fill('What does total_area return?');
    await chat.locator(kChat.input).press('Enter');
    await chat.locator(kChat.user).last().filter({ hasText: 'What does total_area return?' }).waitFor();
    await waitLonger(chat, kChat.assistant, 0);
    await chat.locator(kChat.stop).waitFor({ state: 'hidden' });
    assert.equal(await chat.locator(kChat.error).count(), 0);
  });

  it('Explain Selection from the editor context menu opens the chat with an explanation', async () => {
    await s.wb.command('Latent: New Chat');
    await s.wb.openFile('shapes.py');
    await s.wb.selectLines(5, 10); // class Circle
    await s.wb.contextMenu(s.wb.activeEditor().locator('.view-line', { hasText: 'class Circle:' }), 'Explain Selection');
    chat = await s.wb.webviewFrame(kChat.title);
    await chat.locator(kChat.user).last().filter({ hasText: 'Explain shapes.py, lines 5–10' }).waitFor();
    await waitLonger(chat, kChat.assistant, 0);
    await chat.locator(kChat.stop).waitFor({ state: 'hidden' });
    assert.equal(await chat.locator(kChat.error).count(), 0);
    await s.wb.screenshot('chat');
  });

  it('Edit Selection… opens the diff of the proposed edit, and Accept changes the file', async () => {
    await s.wb.openFile('shapes.py');
    await s.wb.page.keyboard.press(kKeys.save);
    await s.wb.page.locator(kSelectors.dirtyActiveTab).waitFor({ state: 'detached' });
    await s.wb.selectLines(13, 18); // class Square
    await s.wb.contextMenu(s.wb.activeEditor().locator('.view-line', { hasText: 'class Square:' }), 'Edit Selection…');
    await s.wb.answerInputBox('Make Square a dataclass', /How should the selected code change/);
    await s.wb.page.locator(kSelectors.diffEditor).waitFor();
    await s.wb.page.locator(kSelectors.activeTab).filter({ hasText: 'shapes.py ↔ Latent' }).waitFor();
    await s.wb.toast(/editing the selection/).waitFor({ state: 'detached' });
    await s.wb.screenshot('edit-diff');
    const before = fs.readFileSync(file('shapes.py'), 'utf8').split('\n');
    await s.wb.page.locator(kSelectors.editorAction('Accept Edit')).click();
    await s.wb.page.locator(kSelectors.diffEditor).waitFor({ state: 'detached' });
    await s.wb.page.locator(kSelectors.activeTab).filter({ hasText: 'shapes.py' }).waitFor();
    await s.wb.page.keyboard.press(kKeys.save);
    await s.wb.page.locator(kSelectors.dirtyActiveTab).waitFor({ state: 'detached' });
    const after = fs.readFileSync(file('shapes.py'), 'utf8').split('\n');
    assert.notDeepEqual(after, before);
    assert.deepEqual(after.slice(0, 12), before.slice(0, 12), 'lines above the selection changed');
    assert.deepEqual(after.slice(after.length - (before.length - 18)), before.slice(18), 'lines below the selection changed');
  });

  it('the chat streams an answer from a (slow) remote backend, and Stop stops it there', async () => {
    const slow = await SlowOpenAI.start();
    try {
      await s.setSettings({ 'latent.backend': 'remote', 'latent.remote.url': slow.url, 'latent.remote.model': 'slow' });
      await s.wb.waitStatus(kStatusItem, /Latent: remote/);
      await s.wb.openViewContainer('Latent');
      chat = await s.wb.webviewFrame(kChat.title);
      await chat.locator(kChat.input).fill('Tell me about shapes.py');
      await chat.locator(kChat.input).press('Enter');
      // Streams: the answer is shown while it grows.
      const first = await waitLonger(chat, kChat.assistant, 0);
      await waitLonger(chat, kChat.assistant, first);
      await chat.locator(kChat.stop).click();
      await chat.locator(kChat.error).last().filter({ hasText: 'Stopped.' }).waitFor();
      await chat.locator(kChat.stop).waitFor({ state: 'hidden' });
      const a = await slow.hungUp();
      assert.ok(a.words < 1200, `the endpoint sent the whole answer (${a.words} words)`);
      assert.equal(await chat.locator(kChat.send).isDisabled(), false);
    } finally {
      await s.setSettings({ 'latent.backend': undefined, 'latent.remote.url': undefined, 'latent.remote.model': undefined });
      await slow.stop();
    }
    await s.wb.waitStatus(kStatusItem, kBackend);
  });

  it('after its server is killed, the extension starts it again; "Latent: Restart Server" restarts it', async () => {
    const [pid] = s.server.latentServerPids();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await s.wb.toast(/the server stopped unexpectedly/).waitFor();
    const second = await waitNewServer(s, pid);
    await s.wb.waitStatus(kStatusItem, kBackend);
    await s.wb.command('Latent: Restart Server');
    const third = await waitNewServer(s, second);
    assert.notEqual(third, pid);
    await s.wb.waitStatus(kStatusItem, kBackend);
    // It answers: a completion by hand.
    await s.wb.openFile('greet.ts');
    await s.wb.goTo(7, 3);
    await s.wb.page.keyboard.press(kKeys.triggerInline);
    assert.ok((await s.wb.waitGhostText()).length > 0);
    await s.wb.page.keyboard.press('Escape');
  });
});

// Waits until the only `latent lsp` of the session is another process than `old`.
async function waitNewServer(s: Session, old: number, timeout = 30_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const pids = s.server.latentServerPids();
    if (pids.length === 1 && pids[0] !== old) return pids[0]!;
    if (Date.now() - t0 > timeout) throw new Error(`no new latent lsp in ${timeout} ms (now: ${pids.join(', ') || 'none'})`);
    await s.wb.page.waitForTimeout(100); // poll /proc
  }
}
