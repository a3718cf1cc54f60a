// The chat page inside the webview. It renders what the extension sends (checked with
// parseHostMessage), streams the answer in as Markdown, and posts the user's actions back
// (send, stop, clear, copy and insert a code block). Its only channel is acquireVsCodeApi.
import { HostMessage, parseHostMessage, Turn, WebviewMessage } from '../shared/messages';
import { renderMarkdown } from './render';

interface VsCodeApi {
  postMessage(m: WebviewMessage): void;
  getState(): unknown;
  setState(s: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

interface PageState {
  includeSelection: boolean;
  includeFile: boolean;
  draft: string;
}

const vscode = acquireVsCodeApi();

function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e;
}

const log = $('log');
const input = $('input') as HTMLTextAreaElement;
const includeSelection = $('include-selection') as HTMLInputElement;
const includeFile = $('include-file') as HTMLInputElement;
const sendButton = $('send') as HTMLButtonElement;
const stopButton = $('stop') as HTMLButtonElement;
const form = $('composer') as HTMLFormElement;

function loadState(): PageState {
  const s = vscode.getState() as Partial<PageState> | undefined;
  return {
    includeSelection: typeof s?.includeSelection === 'boolean' ? s.includeSelection : true,
    includeFile: typeof s?.includeFile === 'boolean' ? s.includeFile : false,
    draft: typeof s?.draft === 'string' ? s.draft : '',
  };
}

function saveState(): void {
  const s: PageState = { includeSelection: includeSelection.checked, includeFile: includeFile.checked, draft: input.value };
  vscode.setState(s);
}

// The answer being streamed: its text so far and the element it renders into.
let streaming: { text: string; body: HTMLElement; frame: number } | undefined;

function setBusy(busy: boolean): void {
  stopButton.hidden = !busy;
  sendButton.disabled = busy;
}

function addMessage(role: Turn['role'] | 'error'): HTMLElement {
  const box = document.createElement('section');
  box.className = `message ${role}`;
  const who = document.createElement('div');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : role === 'assistant' ? 'Latent' : 'Error';
  const body = document.createElement('div');
  body.className = 'body';
  box.append(who, body);
  log.append(box);
  return body;
}

// Renders Markdown into `body` and gives each code block its Copy and Insert buttons.
function renderInto(body: HTMLElement, text: string): void {
  body.innerHTML = renderMarkdown(text);
  for (const pre of Array.from(body.querySelectorAll('pre'))) {
    const code = pre.querySelector('code');
    const bar = document.createElement('div');
    bar.className = 'code-actions';
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'copy';
    copy.textContent = 'Copy';
    copy.title = 'Copy to the clipboard';
    copy.addEventListener('click', () => vscode.postMessage({ type: 'copy', code: code?.textContent ?? '' }));
    const insert = document.createElement('button');
    insert.type = 'button';
    insert.className = 'insert';
    insert.textContent = 'Insert';
    insert.title = 'Insert at the cursor';
    insert.addEventListener('click', () => vscode.postMessage({ type: 'insert', code: code?.textContent ?? '' }));
    bar.append(copy, insert);
    pre.before(bar);
  }
}

function showTurn(t: Turn): void {
  const body = addMessage(t.role);
  if (t.role === 'user') body.textContent = t.content;
  else renderInto(body, t.content);
}

function scrollDown(): void {
  log.scrollTop = log.scrollHeight;
}

function handle(m: HostMessage): void {
  switch (m.type) {
    case 'history':
      log.replaceChildren();
      streaming = undefined;
      m.turns.forEach(showTurn);
      setBusy(m.busy);
      break;
    case 'turn':
      showTurn(m.turn);
      break;
    case 'begin':
      streaming = { text: '', body: addMessage('assistant'), frame: 0 };
      streaming.body.classList.add('streaming');
      setBusy(true);
      break;
    case 'delta': {
      const s = streaming;
      if (!s) break;
      s.text += m.text;
      // One render per frame, however many pieces arrive.
      if (!s.frame) {
        s.frame = requestAnimationFrame(() => {
          s.frame = 0;
          renderInto(s.body, s.text);
          scrollDown();
        });
      }
      break;
    }
    case 'end': {
      const s = streaming;
      streaming = undefined;
      if (s) {
        if (s.frame) cancelAnimationFrame(s.frame);
        renderInto(s.body, s.text);
        s.body.classList.remove('streaming');
        if (!s.text) s.body.closest('.message')?.remove();
      }
      if (m.cancelled) addMessage('error').textContent = 'Stopped.';
      if (m.error) addMessage('error').textContent = m.error;
      setBusy(false);
      break;
    }
  }
  scrollDown();
}

window.addEventListener('message', (e: MessageEvent) => {
  const m = parseHostMessage(e.data);
  if (m) handle(m);
});

function send(): void {
  const text = input.value.trim();
  if (!text || sendButton.disabled) return;
  vscode.postMessage({ type: 'send', text, includeSelection: includeSelection.checked, includeFile: includeFile.checked });
  input.value = '';
  saveState();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  send();
});
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
input.addEventListener('input', saveState);
includeSelection.addEventListener('change', saveState);
includeFile.addEventListener('change', saveState);
stopButton.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));

const state = loadState();
includeSelection.checked = state.includeSelection;
includeFile.checked = state.includeFile;
input.value = state.draft;
vscode.postMessage({ type: 'ready' });
