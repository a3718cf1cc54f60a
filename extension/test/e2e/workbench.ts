// Driving VS Code's workbench in Chromium: the selectors of the pinned version in one
// place (kSelectors) and the steps a test is made of (type, wait for ghost text, run a
// command, open a view, read a webview, read an output channel, take a screenshot).
// Every wait is on the workbench's own elements; the few bounded waits that prove an
// absence say so. A new code-server version is checked here first.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Frame, Locator, Page } from 'playwright-core';

// VS Code 1.100.3 (code-server 4.100.3).
export const kSelectors = {
  workbench: '.monaco-workbench',
  statusBar: '.monaco-workbench .part.statusbar',
  // A status bar item: its id is "<publisher>.<extension>.<item id>".
  statusItem: (id: string) => `.part.statusbar .statusbar-item[id="${id}"]`,
  quickInput: '.quick-input-widget',
  quickInputBox: '.quick-input-widget .quick-input-box input',
  quickInputRow: '.quick-input-widget .quick-input-list .monaco-list-row',
  quickInputLabel: '.label-name',
  tab: (label: string) => `.tabs-container .tab[aria-label^="${label}"]`,
  activeTab: '.editor-group-container.active .tab.active',
  dirtyTab: '.tab.dirty',
  dirtyActiveTab: '.editor-group-container.active .tab.active.dirty',
  dialog: '.monaco-dialog-box',
  dialogButtons: '.monaco-dialog-box .dialog-buttons .monaco-button',
  activeEditor: '.editor-group-container.active .monaco-editor:not(.original-in-monaco-diff-editor)',
  focusedEditor: '.editor-group-container.active .monaco-editor.focused',
  viewLines: '.view-lines',
  // Ghost text: the rest of the cursor's line is an injected "after" text; further lines
  // are a view zone.
  ghostInline: '.ghost-text-decoration',
  ghostLines: '.ghost-text',
  suggestWidget: '.editor-widget.suggest-widget.visible', // word and language suggestions
  diffEditor: '.editor-group-container.active .monaco-diff-editor',
  editorMessage: '.monaco-editor-overlaymessage', // e.g. "Cannot edit in read-only editor"
  editorAction: (label: string) => `.editor-group-container.active .editor-actions .action-label[aria-label^="${label}"]`,
  contextMenu: '.context-view .monaco-menu',
  contextMenuLabel: '.action-item .action-label',
  notificationToast: '.notifications-toasts .notification-toast',
  notificationCenter: '.notifications-center',
  notificationMessage: '.notification-list-item-message',
  notificationButton: '.notification-list-item-buttons-container .monaco-button',
  // A webview's content: the inner frame of its outer iframe, titled with the view's name.
  webviewOuter: 'iframe.webview.ready',
  webviewInnerId: 'active-frame',
} as const;

export const kKeys = {
  commandPalette: 'F1',
  quickOpen: 'Control+P',
  goToLine: 'Control+G',
  save: 'Control+S',
  acceptInline: 'Tab',
  triggerInline: 'Alt+\\', // the extension's keybinding for editor.action.inlineSuggest.trigger
} as const;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Text as the DOM shows it: non-breaking spaces are spaces.
function plain(s: string): string {
  return s.replace(/\u00a0/g, ' ');
}

export class Workbench {
  constructor(
    readonly page: Page,
    private readonly shotsDir: string,
    private readonly userDataDir: string,
  ) {}

  // Waits for the workbench's status bar (the workbench has restored).
  async ready(timeout = 60_000): Promise<void> {
    await this.page.locator(kSelectors.statusBar).waitFor({ timeout });
  }

  // ---- status bar and notifications ----

  statusItem(id: string): Locator {
    return this.page.locator(kSelectors.statusItem(id));
  }

  // Waits until the status bar item's text matches; returns the text.
  async waitStatus(id: string, re: RegExp, timeout = 30_000): Promise<string> {
    const item = this.statusItem(id).filter({ hasText: re });
    try {
      await item.waitFor({ timeout });
    } catch (e) {
      const now = await this.statusItem(id).innerText().catch(() => '(no such item)');
      throw new Error(`status bar item ${id} never matched ${re}; it shows ${JSON.stringify(plain(now))}`, { cause: e });
    }
    return plain(await item.innerText()).trim();
  }

  async statusTooltip(id: string): Promise<string> {
    return plain((await this.statusItem(id).locator('a').first().getAttribute('aria-label')) ?? '');
  }

  // The notifications shown as toasts now.
  async toasts(): Promise<string[]> {
    return (await this.page.locator(`${kSelectors.notificationToast} ${kSelectors.notificationMessage}`).allInnerTexts()).map(plain);
  }

  toast(text: string | RegExp): Locator {
    return this.page.locator(kSelectors.notificationToast).filter({ hasText: text });
  }

  // Every notification, toast or not (opens and closes the notification center).
  async allNotifications(): Promise<string[]> {
    await this.command('Notifications: Show Notifications');
    const center = this.page.locator(kSelectors.notificationCenter);
    await center.waitFor({ state: 'visible' });
    const out = (await center.locator(kSelectors.notificationMessage).allInnerTexts()).map(plain);
    await this.command('Notifications: Hide Notifications');
    await center.waitFor({ state: 'hidden' });
    return out;
  }

  // ---- commands, files, views ----

  // Runs a command by its title from the command palette (F1).
  async command(title: string): Promise<void> {
    await this.page.keyboard.press(kKeys.commandPalette);
    const input = this.page.locator(kSelectors.quickInputBox);
    await input.waitFor({ state: 'visible' });
    await input.fill('>' + title);
    await this.pickQuickInput(title);
  }

  // Picks the quick input row whose label is exactly `label`.
  async pickQuickInput(label: string): Promise<void> {
    const row = this.page
      .locator(kSelectors.quickInputRow)
      .filter({ has: this.page.locator(kSelectors.quickInputLabel, { hasText: new RegExp(`^${escapeRegExp(label)}$`) }) })
      .first();
    await row.waitFor();
    await row.click();
    await this.page.locator(kSelectors.quickInput).waitFor({ state: 'hidden' });
  }

  // Answers an input box (e.g. showInputBox) that is open now.
  async answerInputBox(text: string, prompt?: RegExp): Promise<void> {
    const widget = this.page.locator(kSelectors.quickInput);
    await (prompt ? widget.filter({ hasText: prompt }) : widget).waitFor({ state: 'visible' });
    await this.page.locator(kSelectors.quickInputBox).fill(text);
    await this.page.keyboard.press('Enter');
    await widget.waitFor({ state: 'hidden' });
  }

  // Opens a workspace file by name (Ctrl+P) and waits until its editor has the focus.
  async openFile(name: string): Promise<void> {
    await this.page.keyboard.press(kKeys.quickOpen);
    const input = this.page.locator(kSelectors.quickInputBox);
    await input.waitFor({ state: 'visible' });
    await input.fill(name);
    await this.pickQuickInput(name);
    await this.page.locator(kSelectors.activeTab).filter({ hasText: name }).waitFor();
    await this.page.locator(kSelectors.focusedEditor).waitFor();
  }

  // Moves the cursor of the focused editor to LINE:COL (1-based, as Ctrl+G takes them).
  async goTo(line: number, column: number): Promise<void> {
    await this.page.locator(kSelectors.focusedEditor).waitFor();
    await this.page.keyboard.press(kKeys.goToLine);
    await this.page.locator(kSelectors.quickInputBox).waitFor({ state: 'visible' });
    await this.page.locator(kSelectors.quickInputBox).fill(`:${line}:${column}`); // Ctrl+G is quick open with ":"
    await this.page.keyboard.press('Enter');
    await this.page.locator(kSelectors.quickInput).waitFor({ state: 'hidden' });
    await this.page.locator(kSelectors.focusedEditor).waitFor();
  }

  // Selects lines first..last (1-based) in the focused editor: from the start of the
  // first to the end of the last.
  async selectLines(first: number, last: number): Promise<void> {
    await this.goTo(first, 1);
    for (let i = first; i < last; i++) await this.page.keyboard.press('Shift+ArrowDown');
    await this.page.keyboard.press('Shift+End');
  }

  // Types as a person would: one key event per character.
  async type(text: string, delayMs = 0): Promise<void> {
    await this.page.locator(kSelectors.focusedEditor).waitFor();
    await this.page.keyboard.type(text, { delay: delayMs });
  }

  // Enters `text` as one input event (one document change, one completion request).
  async insert(text: string): Promise<void> {
    await this.page.locator(kSelectors.focusedEditor).waitFor();
    await this.page.keyboard.insertText(text);
  }

  // The active editor tab's label ("name, preview" and the like).
  async activeTabLabel(): Promise<string> {
    const tab = this.page.locator(kSelectors.activeTab);
    return (await tab.count()) ? ((await tab.first().getAttribute('aria-label')) ?? '') : '';
  }

  // Closes the active editor; answers "Don't Save" if VS Code asks. Returns whether it asked.
  async closeEditorWithoutSaving(): Promise<boolean> {
    const label = await this.activeTabLabel();
    await this.command('View: Close Editor');
    const closed = this.page.locator(kSelectors.tab(label)).waitFor({ state: 'detached' });
    const asked = this.page.locator(kSelectors.dialog).waitFor();
    if ((await Promise.race([closed.then(() => false), asked.then(() => true)])) === false) return false;
    await this.page.locator(kSelectors.dialogButtons).filter({ hasText: "Don't Save" }).click();
    await closed;
    return true;
  }

  // Opens a view container (e.g. "Latent") in the side bar, without toggling it closed.
  async openViewContainer(title: string): Promise<void> {
    await this.command(`View: Show ${title}`);
  }

  // The frame of a webview's content, found by the view's (or panel's) title.
  async webviewFrame(title: string, timeout = 30_000): Promise<Frame> {
    const t0 = Date.now();
    for (;;) {
      for (const f of this.page.frames()) {
        const el = await f.frameElement().catch(() => undefined);
        if (!el) continue;
        const [id, t] = await Promise.all([el.getAttribute('id'), el.getAttribute('title')]).catch(() => [null, null]);
        if (id !== kSelectors.webviewInnerId || t !== title) continue;
        const state = await f.evaluate(() => (globalThis as any).document.readyState as string).catch(() => '');
        if (state === 'complete') return f;
      }
      if (Date.now() - t0 > timeout) throw new Error(`no webview titled ${JSON.stringify(title)} in ${timeout} ms`);
      await this.page.waitForTimeout(100); // poll: frames come and go without a DOM event here
    }
  }

  // Right-clicks `target` and runs the context menu's item `label`. (A mouse click on an
  // item only highlights it here; the menu runs the highlighted item on Enter.)
  async contextMenu(target: Locator, label: string): Promise<void> {
    await target.click({ button: 'right' });
    const item = this.page
      .locator(kSelectors.contextMenu)
      .locator(kSelectors.contextMenuLabel, { hasText: new RegExp(`^${escapeRegExp(label)}$`) })
      .first();
    await item.hover();
    await this.page.keyboard.press('Enter');
    await item.waitFor({ state: 'hidden' });
  }

  // ---- the editor ----

  activeEditor(): Locator {
    return this.page.locator(kSelectors.activeEditor).first();
  }

  // The ghost text in the active editor now: the cursor line's rest, then its further
  // lines; undefined when none is shown.
  async ghostText(): Promise<string | undefined> {
    const ed = this.activeEditor();
    const inline = await ed.locator(kSelectors.ghostInline).allTextContents();
    const lines = await ed.locator(`${kSelectors.ghostLines} .view-line`).allTextContents();
    if (!inline.length && !lines.length) return undefined;
    return plain([inline.join(''), ...lines].join('\n'));
  }

  // Waits until ghost text shows in the active editor and returns it.
  async waitGhostText(timeout = 30_000): Promise<string> {
    await this.ghostLocator().waitFor({ timeout });
    return (await this.ghostText())!;
  }

  // Any part of the ghost text (a completion may start with a line break: no inline part).
  ghostLocator(): Locator {
    return this.activeEditor().locator(`${kSelectors.ghostInline}, ${kSelectors.ghostLines}`).first();
  }

  // Holds that no ghost text shows for `ms` (a bounded wait: absence has no event).
  async expectNoGhostText(ms: number): Promise<void> {
    const shown = await this.ghostLocator()
      .waitFor({ timeout: ms })
      .then(
      () => true,
      () => false,
    );
    if (shown) throw new Error(`ghost text appeared: ${JSON.stringify(await this.ghostText())}`);
  }

  // The text of the active editor's visible lines (a virtual list: only what is on screen).
  async visibleText(): Promise<string> {
    return plain(await this.activeEditor().locator(kSelectors.viewLines).innerText());
  }

  // Replaces the user's settings.json through its editor, as a person would (VS Code does
  // not notice the file changing on disk under code-server), saves and closes it.
  async writeUserSettings(settings: Record<string, unknown>): Promise<void> {
    await this.command('Preferences: Open User Settings (JSON)');
    await this.page.locator(kSelectors.activeTab).filter({ hasText: 'settings.json' }).waitFor();
    await this.page.locator(kSelectors.focusedEditor).waitFor();
    await this.page.keyboard.press('Control+A');
    await this.page.keyboard.insertText(JSON.stringify(settings)); // one line: no auto-indent
    await this.page.keyboard.press(kKeys.save);
    const tab = this.page.locator(kSelectors.activeTab).filter({ hasText: 'settings.json' });
    await tab.and(this.page.locator(kSelectors.dirtyTab)).waitFor({ state: 'detached' });
    await this.command('View: Close Editor');
  }

  // ---- output channels ----

  // The text of an extension's log output channel so far, read from the log file the
  // channel writes (the newest extension host's), e.g. ("latent-dev.latent", "Latent").
  outputChannel(extensionId: string, name: string): string {
    const logs = path.join(this.userDataDir, 'logs');
    let best: { file: string; mtime: number } | undefined;
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name === `${name}.log` && path.basename(dir) === extensionId) {
          const mtime = fs.statSync(p).mtimeMs;
          if (!best || mtime > best.mtime) best = { file: p, mtime };
        }
      }
    };
    if (fs.existsSync(logs)) walk(logs);
    return best ? fs.readFileSync(best.file, 'utf8') : '';
  }

  // Waits until the output channel holds a line matching `re`; returns that line.
  async waitOutputLine(extensionId: string, name: string, re: RegExp, timeout = 30_000): Promise<string> {
    const t0 = Date.now();
    for (;;) {
      const line = this.outputChannel(extensionId, name)
        .split('\n')
        .find((l) => re.test(l));
      if (line) return line;
      if (Date.now() - t0 > timeout) throw new Error(`output channel ${name} never had a line matching ${re}`);
      await this.page.waitForTimeout(100); // poll the file
    }
  }

  // ---- screenshots ----

  async screenshot(name: string): Promise<string> {
    const file = path.join(this.shotsDir, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }
}
