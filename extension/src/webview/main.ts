// The chat page inside the webview. It renders what the extension sends (checked with
// parseHostMessage): the answer streamed in as Markdown, agent steps as they run
// (collapsible), the sources, and a proposal as a review list. It posts the user's actions
// back (send with mentions or a prompt, mode, stop, clear, copy and insert a code block,
// open a source, review a file). Its only channel is acquireVsCodeApi.
import {
  ChatMode,
  FileState,
  HostMessage,
  kPromptName,
  Mention,
  MentionItem,
  parseHostMessage,
  PromptItem,
  ReviewFile,
  ReviewView,
  Source,
  Turn,
  ViewStep,
  WebviewMessage,
} from '../shared/messages';
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

// Milliseconds after the last keystroke before an '@file:' / '@symbol:' query is sent.
const kMentionDebounceMs = 150;

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
const popup = $('popup') as HTMLUListElement;
const chips = $('chips');
const modeButtons: Record<ChatMode, HTMLButtonElement> = {
  chat: $('mode-chat') as HTMLButtonElement,
  agent: $('mode-agent') as HTMLButtonElement,
};

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

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(className: string, text: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', className, text);
  b.type = 'button';
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}

// ---- the mode -------------------------------------------------------------------------

let mode: ChatMode = 'chat';

function showMode(m: ChatMode): void {
  mode = m;
  for (const [k, b] of Object.entries(modeButtons) as [ChatMode, HTMLButtonElement][]) {
    b.setAttribute('aria-checked', String(k === m));
    b.classList.toggle('selected', k === m);
  }
  document.body.dataset.mode = m;
}

for (const [k, b] of Object.entries(modeButtons) as [ChatMode, HTMLButtonElement][]) {
  b.addEventListener('click', () => {
    if (mode === k) return;
    showMode(k);
    vscode.postMessage({ type: 'mode', mode: k });
  });
}

// ---- messages -------------------------------------------------------------------------

// An assistant message's parts, in the order they show.
interface Parts {
  box: HTMLElement;
  steps: HTMLElement;
  body: HTMLElement;
  sources: HTMLElement;
  review: HTMLElement;
}

// The answer being streamed: its text so far and the elements it renders into.
let streaming: { text: string; parts: Parts; frame: number } | undefined;

function setBusy(busy: boolean): void {
  stopButton.hidden = !busy;
  sendButton.disabled = busy;
}

function addMessage(role: Turn['role'] | 'error'): Parts {
  const box = el('section', `message ${role}`);
  const who = el('div', 'who', role === 'user' ? 'You' : role === 'assistant' ? 'Latent' : 'Error');
  const parts: Parts = {
    box,
    steps: el('div', 'steps'),
    body: el('div', 'body'),
    sources: el('div', 'sources'),
    review: el('div', 'review'),
  };
  box.append(who, parts.steps, parts.body, parts.sources, parts.review);
  log.append(box);
  return parts;
}

// Renders Markdown into `body` and gives each code block its Copy and Insert buttons.
function renderInto(body: HTMLElement, text: string): void {
  body.innerHTML = renderMarkdown(text);
  for (const pre of Array.from(body.querySelectorAll('pre'))) {
    const code = pre.querySelector('code');
    const bar = el('div', 'code-actions');
    bar.append(
      button('copy', 'Copy', 'Copy to the clipboard', () => vscode.postMessage({ type: 'copy', code: code?.textContent ?? '' })),
      button('insert', 'Insert', 'Insert at the cursor', () =>
        vscode.postMessage({ type: 'insert', code: code?.textContent ?? '' }),
      ),
    );
    pre.before(bar);
  }
}

// "src/a.ts:10–40" (lines 1-based, as editors show them).
function where(s: Source): string {
  const a = s.range.start.line + 1;
  const b = s.range.end.line + (s.range.end.character > 0 || s.range.end.line === s.range.start.line ? 1 : 0);
  return b > a ? `${s.path}:${a}–${b}` : `${s.path}:${a}`;
}

function sourceList(sources: readonly Source[]): HTMLUListElement {
  const ul = el('ul', 'source-list');
  for (const s of sources) {
    const li = el('li');
    const a = button('source', where(s), `Open ${s.path}`, () =>
      vscode.postMessage({ type: 'openSource', uri: s.uri, range: s.range }),
    );
    li.append(a, el('span', 'why', s.why));
    ul.append(li);
  }
  return ul;
}

function showSources(parts: Parts, sources: readonly Source[]): void {
  parts.sources.replaceChildren();
  if (!sources.length) return;
  parts.sources.append(el('div', 'label', `Sources (${sources.length})`), sourceList(sources));
}

const kStepIcon: Record<ViewStep['status'], string> = { running: '', done: '✓', refused: '⊘', failed: '✗' };

// Adds or updates the step in place; a step the user opened stays open.
function showStep(parts: Parts, step: ViewStep): void {
  const d = parts.steps.querySelector<HTMLDetailsElement>(`details.step[data-id="${step.id}"]`);
  const open = d?.open ?? false;
  const fresh = el('details', `step ${step.status}`);
  fresh.dataset.id = String(step.id);
  fresh.dataset.tool = step.tool;
  fresh.open = open;
  const summary = el('summary');
  const icon = el('span', 'icon', kStepIcon[step.status]);
  icon.setAttribute('aria-label', step.status);
  summary.append(icon, el('span', 'title', step.title));
  fresh.append(summary);
  if (step.detail) fresh.append(el('pre', 'detail', step.detail));
  if (step.sources?.length) fresh.append(sourceList(step.sources));
  if (!step.detail && !step.sources?.length) fresh.classList.add('empty');
  if (d) d.replaceWith(fresh);
  else {
    // Steps in id order, whatever order their messages came in.
    const after = Array.from(parts.steps.querySelectorAll<HTMLElement>('details.step')).find(
      (x) => Number(x.dataset.id) > step.id,
    );
    if (after) after.before(fresh);
    else parts.steps.append(fresh);
  }
}

const kStateLabel: Record<FileState, string> = {
  pending: '',
  accepted: 'Accepted',
  rejected: 'Rejected',
  changed: 'Changed since',
  failed: 'Not applied',
};

function fileRow(id: number, f: ReviewFile): HTMLElement {
  const row = el('div', `file ${f.state}`);
  row.dataset.uri = f.uri;
  const name = el('span', 'path', f.path);
  name.title = f.created ? `${f.path} (new file)` : f.path;
  const counts = el('span', 'counts');
  counts.append(el('span', 'added', `+${f.added}`), el('span', 'removed', `−${f.removed}`));
  const badge = el('span', 'badge', f.created ? 'new' : '');
  const state = el('span', 'state', kStateLabel[f.state]);
  if (f.note) state.title = f.note;
  const pending = f.state === 'pending';
  const actions = el('span', 'actions');
  actions.append(
    button('diff secondary', 'View diff', `Show ${f.path} against the proposal`, () =>
      vscode.postMessage({ type: 'review', action: 'diff', id, uri: f.uri }),
    ),
  );
  if (pending) {
    actions.append(
      button('accept', 'Accept', `Write the proposal into ${f.path}`, () =>
        vscode.postMessage({ type: 'review', action: 'accept', id, uri: f.uri }),
      ),
      button('reject secondary', 'Reject', `Discard the proposal for ${f.path}`, () =>
        vscode.postMessage({ type: 'review', action: 'reject', id, uri: f.uri }),
      ),
    );
  }
  row.append(name, badge, counts, state, actions);
  if (f.note && !pending) row.append(el('div', 'note', f.note));
  return row;
}

// The proposals on the page by id, with their files' latest state.
const reviews = new Map<number, { view: ReviewView; element: HTMLElement }>();

function showReview(parts: Parts, view: ReviewView): void {
  reviews.set(view.id, { view, element: parts.review });
  renderReview(view.id);
}

function renderReview(id: number): void {
  const r = reviews.get(id);
  if (!r) return;
  const { view, element } = r;
  element.replaceChildren();
  element.dataset.id = String(id);
  const pending = view.files.filter((f) => f.state === 'pending').length;
  const head = el('div', 'label', `Proposed changes (${view.files.length} ${view.files.length === 1 ? 'file' : 'files'})`);
  element.append(head, ...view.files.map((f) => fileRow(id, f)));
  if (pending) {
    const all = el('div', 'all');
    all.append(
      button('accept-all', 'Accept all', 'Write every pending file', () =>
        vscode.postMessage({ type: 'reviewAll', action: 'accept', id }),
      ),
      button('reject-all secondary', 'Reject all', 'Discard every pending file', () =>
        vscode.postMessage({ type: 'reviewAll', action: 'reject', id }),
      ),
    );
    element.append(all);
  }
}

function fileState(id: number, uri: string, state: FileState, note?: string): void {
  const r = reviews.get(id);
  if (!r) return;
  for (const f of r.view.files) {
    if (uri ? f.uri !== uri : f.state !== 'pending') continue;
    f.state = state;
    if (note) f.note = note;
    else delete f.note;
  }
  renderReview(id);
}

const kStopNote: Record<string, string> = {
  stepLimit: 'Stopped at the step limit (latent.agent.maxSteps).',
  noTools: 'This backend cannot call tools: answered as a chat with the repository’s context.',
};

function showNote(parts: Parts, text: string): void {
  parts.body.after(el('div', 'stop-note', text));
}

function showTurn(t: Turn): void {
  const parts = addMessage(t.role);
  if (t.role === 'user') {
    parts.body.textContent = t.content;
    return;
  }
  for (const s of t.steps ?? []) showStep(parts, s);
  renderInto(parts.body, t.content);
  if (t.stopReason && kStopNote[t.stopReason]) showNote(parts, kStopNote[t.stopReason]!);
  showSources(parts, t.sources ?? []);
  if (t.proposal) showReview(parts, t.proposal);
}

function scrollDown(): void {
  log.scrollTop = log.scrollHeight;
}

function handle(m: HostMessage): void {
  switch (m.type) {
    case 'history':
      log.replaceChildren();
      reviews.clear();
      streaming = undefined;
      m.turns.forEach(showTurn);
      setBusy(m.busy);
      showMode(m.mode);
      break;
    case 'turn':
      showTurn(m.turn);
      break;
    case 'mode':
      showMode(m.mode);
      break;
    case 'begin':
      streaming = { text: '', parts: addMessage('assistant'), frame: 0 };
      streaming.parts.body.classList.add('streaming');
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
          renderInto(s.parts.body, s.text);
          scrollDown();
        });
      }
      break;
    }
    case 'sources':
      if (streaming) showSources(streaming.parts, m.sources);
      break;
    case 'step':
      if (streaming) showStep(streaming.parts, m.step);
      break;
    case 'proposal':
      if (streaming) showReview(streaming.parts, m.proposal);
      break;
    case 'fileState':
      fileState(m.id, m.uri, m.state, m.note);
      break;
    case 'end': {
      const s = streaming;
      streaming = undefined;
      if (s) {
        if (s.frame) cancelAnimationFrame(s.frame);
        renderInto(s.parts.body, s.text);
        s.parts.body.classList.remove('streaming');
        // A step still running when the answer ended did not finish.
        for (const d of Array.from(s.parts.steps.querySelectorAll('details.step.running'))) {
          d.classList.replace('running', 'failed');
          d.querySelector('.icon')!.textContent = kStepIcon.failed;
        }
        if (m.stopReason && kStopNote[m.stopReason]) showNote(s.parts, kStopNote[m.stopReason]!);
        const empty = !s.text && !s.parts.steps.childElementCount && !s.parts.review.childElementCount;
        if (empty) s.parts.box.remove();
      }
      if (m.cancelled) addMessage('error').body.textContent = 'Stopped.';
      if (m.error) addMessage('error').body.textContent = m.error;
      setBusy(false);
      break;
    }
    case 'mentionItems':
      mentionItems(m.seq, m.items);
      return; // no scrolling for the popup
    case 'prompts':
      prompts = m.prompts;
      if (tokenAtCaret()?.kind === 'slash') refreshPopup();
      return;
  }
  scrollDown();
}

window.addEventListener('message', (e: MessageEvent) => {
  const m = parseHostMessage(e.data);
  if (m) handle(m);
});

// ---- mentions and prompts in the input -------------------------------------------------

let mentions: Mention[] = [];
let prompts: PromptItem[] | undefined;
let promptsAsked = 0; // when the list was last asked for (ms)

// Asks for the prompt list, at most every 2 s (the server may start after the page).
function askPrompts(): void {
  if (Date.now() - promptsAsked < 2000) return;
  promptsAsked = Date.now();
  vscode.postMessage({ type: 'prompts' });
}

function mentionLabel(m: Mention): string {
  switch (m.kind) {
    case 'file':
      return `@${chipNames.get(m.uri) ?? m.uri.split('/').pop() ?? m.uri}`;
    case 'symbol':
      return `@${m.name}`;
    case 'codebase':
      return '@codebase';
    case 'openEditors':
      return '@openEditors';
  }
}
const chipNames = new Map<string, string>(); // a file mention's uri -> its path as offered

function sameMention(a: Mention, b: Mention): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function renderChips(): void {
  chips.replaceChildren(
    ...mentions.map((m, i) => {
      const chip = el('span', `chip ${m.kind}`);
      chip.append(el('span', 'name', mentionLabel(m)));
      chip.append(
        button('remove', '×', 'Remove this mention', () => {
          mentions.splice(i, 1);
          renderChips();
          input.focus();
        }),
      );
      return chip;
    }),
  );
}

function addMention(m: Mention): void {
  if (!mentions.some((x) => sameMention(x, m))) mentions.push(m);
  renderChips();
}

interface Choice {
  label: string;
  detail: string;
  pick: () => void;
}

const kKinds: { kind: Mention['kind']; detail: string }[] = [
  { kind: 'file', detail: 'a file of the workspace' },
  { kind: 'symbol', detail: 'a definition from the index' },
  { kind: 'codebase', detail: 'search the repository with the question' },
  { kind: 'openEditors', detail: 'the files open in the editor' },
];

// What the text before the caret is typing: '@kind', '@file:query', '/prompt', or nothing.
type Token =
  | { kind: 'at'; start: number; prefix: string }
  | { kind: 'query'; start: number; which: 'file' | 'symbol'; query: string }
  | { kind: 'slash'; prefix: string };

function tokenAtCaret(): Token | undefined {
  const before = input.value.slice(0, input.selectionStart ?? input.value.length);
  const slash = /^\/([A-Za-z0-9_.-]*)$/.exec(before);
  if (slash && input.value.indexOf(' ') < 0) return { kind: 'slash', prefix: slash[1]! };
  const q = /(^|\s)@(file|symbol):(\S*)$/.exec(before);
  if (q) return { kind: 'query', start: before.length - q[0].length + q[1]!.length, which: q[2] as 'file' | 'symbol', query: q[3]! };
  const at = /(^|\s)@([A-Za-z]*)$/.exec(before);
  if (at) return { kind: 'at', start: before.length - at[0].length + at[1]!.length, prefix: at[2]! };
  return undefined;
}

// Replaces the token (from `start` to the caret) with `text`.
function replaceToken(start: number, text: string): void {
  const end = input.selectionStart ?? input.value.length;
  input.value = input.value.slice(0, start) + text + input.value.slice(end);
  const caret = start + text.length;
  input.setSelectionRange(caret, caret);
  saveState();
}

let choices: Choice[] = [];
let active = 0;
let mentionSeq = 0;
let mentionTimer: ReturnType<typeof setTimeout> | undefined;
let pendingQuery: { seq: number; start: number; which: 'file' | 'symbol' } | undefined;

function showChoices(list: Choice[]): void {
  choices = list;
  active = 0;
  popup.replaceChildren(
    ...list.map((c, i) => {
      const li = el('li', i === active ? 'choice active' : 'choice');
      li.setAttribute('role', 'option');
      li.append(el('span', 'label', c.label), el('span', 'detail', c.detail));
      li.addEventListener('mousedown', (e) => {
        e.preventDefault(); // keep the focus in the input
        choose(i);
      });
      return li;
    }),
  );
  popup.hidden = list.length === 0;
}

function closePopup(): void {
  clearTimeout(mentionTimer);
  pendingQuery = undefined;
  showChoices([]);
}

function choose(i: number): void {
  const c = choices[i];
  if (!c) return;
  c.pick();
  input.focus();
  refreshPopup();
}

function move(delta: number): void {
  if (!choices.length) return;
  active = (active + delta + choices.length) % choices.length;
  Array.from(popup.children).forEach((li, i) => li.classList.toggle('active', i === active));
  popup.children[active]?.scrollIntoView({ block: 'nearest' });
}

// What the popup offers for the text before the caret.
function refreshPopup(): void {
  const t = tokenAtCaret();
  if (!t) return closePopup();
  if (t.kind === 'slash') {
    if (!prompts?.length) askPrompts();
    const list = (prompts ?? []).filter((p) => p.name.startsWith(t.prefix));
    return showChoices(
      list.map((p) => ({
        label: `/${p.name}`,
        detail: p.description,
        pick: () => {
          input.value = `/${p.name} `;
          input.setSelectionRange(input.value.length, input.value.length);
          saveState();
        },
      })),
    );
  }
  if (t.kind === 'at') {
    clearTimeout(mentionTimer);
    pendingQuery = undefined;
    const list = kKinds.filter((k) => k.kind.toLowerCase().startsWith(t.prefix.toLowerCase()));
    return showChoices(
      list.map((k) => ({
        label: `@${k.kind}`,
        detail: k.detail,
        pick: () => {
          if (k.kind === 'file' || k.kind === 'symbol') replaceToken(t.start, `@${k.kind}:`);
          else {
            replaceToken(t.start, '');
            addMention({ kind: k.kind });
          }
        },
      })),
    );
  }
  // '@file:query' or '@symbol:query': ask the server once the typing pauses.
  clearTimeout(mentionTimer);
  const seq = ++mentionSeq;
  pendingQuery = { seq, start: t.start, which: t.which };
  mentionTimer = setTimeout(() => {
    vscode.postMessage({ type: 'mentionQuery', kind: t.which, query: t.query, seq });
  }, kMentionDebounceMs);
}

function mentionItems(seq: number, items: MentionItem[]): void {
  const q = pendingQuery;
  if (!q || q.seq !== seq) return; // an older query's answer
  showChoices(
    items.map((item) => ({
      label: item.label,
      detail: item.detail,
      pick: () => {
        replaceToken(q.start, '');
        if (q.which === 'file') {
          chipNames.set(item.uri, item.label);
          addMention(item.range ? { kind: 'file', uri: item.uri, range: item.range } : { kind: 'file', uri: item.uri });
        } else {
          addMention({ kind: 'symbol', name: item.label });
        }
      },
    })),
  );
}

// ---- sending ---------------------------------------------------------------------------

function send(): void {
  const raw = input.value.trim();
  if (sendButton.disabled) return;
  // '/name rest': a prompt of the library with the rest as the question.
  const slash = /^\/(\S+)(?:\s+([\s\S]*))?$/.exec(raw);
  const name = slash?.[1];
  const prompt = name && kPromptName.test(name) && prompts?.some((p) => p.name === name) ? name : undefined;
  const text = prompt ? (slash?.[2] ?? '').trim() : raw;
  if (!text && !prompt) return;
  const m: WebviewMessage = {
    type: 'send',
    text,
    includeSelection: includeSelection.checked,
    includeFile: includeFile.checked,
  };
  if (mentions.length) m.mentions = mentions;
  if (prompt) m.prompt = prompt;
  vscode.postMessage(m);
  input.value = '';
  mentions = [];
  renderChips();
  closePopup();
  saveState();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  send();
});
input.addEventListener('keydown', (e) => {
  if (!popup.hidden && choices.length) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      move(e.key === 'ArrowDown' ? 1 : -1);
      return;
    }
    if ((e.key === 'Enter' || e.key === 'Tab') && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      choose(active);
      return;
    }
    if (e.key === 'Escape') {
      e.preventDefault();
      closePopup();
      return;
    }
  }
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
input.addEventListener('input', () => {
  saveState();
  refreshPopup();
});
input.addEventListener('blur', () => setTimeout(() => document.activeElement !== input && closePopup(), 100));
includeSelection.addEventListener('change', saveState);
includeFile.addEventListener('change', saveState);
stopButton.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));

const state = loadState();
includeSelection.checked = state.includeSelection;
includeFile.checked = state.includeFile;
input.value = state.draft;
showMode('chat');
vscode.postMessage({ type: 'ready' });
askPrompts();
