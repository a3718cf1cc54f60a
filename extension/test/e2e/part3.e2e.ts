// What the real editor showed a new user (issue 21, part 3), checked in the real editor.
// Runs after editor.e2e.ts in the same session; each step leaves the editor as it found it.
import * as assert from 'node:assert/strict';
import { kSelectors } from './workbench';
import { kExtensionId, kStatusItem, Session, sessionOrSkip } from './session';

const kBackend = /Latent: local cpu tiny\.gguf/;
// A setting name of the extension other than latent.modelPath that looks like the model's.
const kWrongModelSetting = /latent\.model(?!Path)\b/;

describe('issue 21 part 3: what the real editor showed', function () {
  let s: Session;

  before(async function () {
    this.timeout(180_000);
    s = await sessionOrSkip(this);
    await s.wb.waitStatus(kStatusItem, kBackend, 60_000);
  });

  it("the server's log lines keep their level in the output channel (info is not [error])", async () => {
    for (const re of [/latent lsp \S+ started/, /backend: loaded /]) {
      const line = await s.wb.waitOutputLine(kExtensionId, 'Latent', re);
      assert.match(line, /\[info\]/, line);
      assert.doesNotMatch(line, /\[error\]/, line);
    }
  });

  it('with no model configured, the messages name latent.modelPath; once it is set, none stays', async () => {
    await s.setSettings({ 'latent.modelPath': '' });
    await s.wb.waitStatus(kStatusItem, /Latent: none/);
    const said: string[] = [];
    said.push(await s.wb.statusTooltip(kStatusItem));
    said.push(...(await s.wb.toasts()).filter((t) => /model/i.test(t)));
    await s.wb.openViewContainer('Latent');
    const chat = await s.wb.webviewFrame('Chat');
    await chat.locator('#input').fill('What is in shapes.py?');
    await chat.locator('#input').press('Enter');
    const error = chat.locator('.message.error .body').last();
    await error.waitFor();
    said.push(await error.innerText());
    const bad = said.filter((t) => /model/i.test(t) && (!t.includes('latent.modelPath') || kWrongModelSetting.test(t)));
    await s.setSettings({ 'latent.modelPath': s.model });
    await s.wb.waitStatus(kStatusItem, kBackend);
    assert.deepEqual(bad, [], 'messages that name another setting than latent.modelPath');
    const left = (await s.wb.allNotifications()).filter((t) => /model/i.test(t));
    assert.deepEqual(left, [], 'notifications about the missing model left after it loaded');
    await s.wb.command('Latent: New Chat');
  });

  it('after Accept in the diff editor title bar, no Accept / Reject of that edit is left (notification, status bar)', async () => {
    await s.wb.openFile('greet.ts');
    await s.wb.selectLines(6, 8); // greet()
    await s.wb.contextMenu(s.wb.activeEditor().locator('.view-line', { hasText: 'export function greet' }), 'Edit Selection…');
    await s.wb.answerInputBox('Greet by age too', /How should the selected code change/);
    await s.wb.page.locator(kSelectors.diffEditor).waitFor();
    await s.wb.toast(/editing the selection/).waitFor({ state: 'detached' });
    await s.wb.page.locator(kSelectors.editorAction('Accept Edit')).click();
    await s.wb.page.locator(kSelectors.diffEditor).waitFor({ state: 'detached' });
    const left = [...(await s.wb.toasts()), ...(await s.wb.allNotifications())].filter((t) => /proposes an edit/.test(t));
    const statusBar = await s.wb.page.locator(kSelectors.statusBar).innerText();
    if (/Accept Edit|Reject/.test(statusBar)) left.push(`status bar: ${statusBar.replace(/\s+/g, ' ')}`);
    // Put greet.ts back for the steps after this one.
    await s.wb.openFile('greet.ts');
    await s.wb.command('File: Revert File');
    await s.wb.page.locator(kSelectors.dirtyActiveTab).waitFor({ state: 'detached' });
    assert.deepEqual(left, [], 'the proposal notification stayed after Accept');
  });

  it('"Latent: Show Status" opens a read-only document (nothing to save)', async () => {
    const before = await s.wb.activeTabLabel();
    await s.wb.command('Latent: Show Status');
    await s.wb.page.waitForFunction(
      ([sel, old]) => (globalThis as any).document.querySelector(sel)?.getAttribute('aria-label') !== old,
      [kSelectors.activeTab, before] as const,
    );
    await s.wb.page.locator(kSelectors.focusedEditor).waitFor();
    const name = await s.wb.activeTabLabel();
    await s.wb.page.keyboard.type('x');
    const message = s.wb.page.locator(kSelectors.editorMessage, { hasText: 'Cannot edit in read-only editor' });
    const readOnly = await message.waitFor({ timeout: 5000 }).then(
      () => true,
      () => false,
    );
    const dirty = (await s.wb.page.locator(kSelectors.dirtyActiveTab).count()) > 0;
    const asked = await s.wb.closeEditorWithoutSaving();
    assert.deepEqual({ name, readOnly, dirty, askedToSave: asked }, { name, readOnly: true, dirty: false, askedToSave: false });
  });

  it("no inline completion in VS Code's own settings.json", async () => {
    await s.wb.command('Preferences: Open User Settings (JSON)');
    await s.wb.page.locator(kSelectors.activeTab).filter({ hasText: 'settings.json' }).waitFor();
    await s.wb.page.locator(kSelectors.focusedEditor).waitFor();
    await s.wb.page.keyboard.press('Control+Home');
    await s.wb.page.keyboard.press('End');
    await s.wb.page.keyboard.press('Enter');
    // A comment: no JSON suggestions (while they show, ghost text hides in their preview).
    await s.wb.type('// the font size for ');
    await s.wb.page.locator(kSelectors.suggestWidget).waitFor({ state: 'hidden' });
    let shown: unknown;
    await s.wb.expectNoGhostText(1500).catch((e: unknown) => (shown = e));
    await s.wb.page.keyboard.press('Escape');
    await s.wb.command('File: Revert File');
    await s.wb.page.locator(kSelectors.dirtyActiveTab).waitFor({ state: 'detached' });
    await s.wb.command('View: Close Editor');
    // The server logs each completion it made with the document's path.
    const asked = s.wb
      .outputChannel(kExtensionId, 'Latent')
      .split('\n')
      .filter((l) => /inlineCompletion .*settings\.json:/.test(l));
    assert.equal(shown, undefined, String(shown));
    assert.deepEqual(asked, [], 'the server completed in settings.json');
  });
});
