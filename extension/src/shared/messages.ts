// The messages between the chat webview and the extension, and the one function each side
// uses to check what it receives. Shared by both bundles; it imports only types, so it
// runs in the webview, in the extension host and in the unit tests alike.
import type { AgentStepStatus, ChatMode, Mention, MentionItem, Range, Source, StopReason } from '../protocol';

export type { ChatMode, Mention, MentionItem, Range, Source };

// Caps on what a message may carry: a webview is untrusted input to the extension (and the
// extension's answer is untrusted Markdown to the webview), so sizes are bounded here.
export const kMaxTextBytes = 256 * 1024; // the server refuses conversations over 256 KiB
export const kMaxTurns = 200;
export const kMaxSources = 200; // sources of one answer or one step
export const kMaxSteps = 100; // the server's step limit is at most 64
export const kMaxFiles = 200; // files of one proposal
export const kMaxMentions = 50; // mentions in one question
export const kMaxItems = 100; // latent/mentions answers at most 100
export const kMaxPrompts = 200; // the server reads at most 100 workspace prompts, plus the built-ins
const kMaxShort = 4096; // a path, a title, a name, a uri, a query

export type Role = 'user' | 'assistant';

// An agent step as the view shows it (the tool's arguments stay in the extension).
export interface ViewStep {
  id: number;
  tool: string;
  title: string;
  status: AgentStepStatus;
  detail?: string;
  sources?: Source[];
}

// A file of a proposal under review: pending until the user accepts or rejects it;
// 'changed' when the file changed since the proposal (not applied); 'failed' when VS Code
// did not apply it or the proposal is gone.
export type FileState = 'pending' | 'accepted' | 'rejected' | 'changed' | 'failed';

export interface ReviewFile {
  uri: string;
  path: string;
  created: boolean;
  added: number; // lines
  removed: number;
  state: FileState;
  note?: string;
}

export interface ReviewView {
  id: number; // the proposal, for the extension's review
  files: ReviewFile[];
}

export interface Turn {
  role: Role;
  content: string;
  // An assistant turn's sources, agent steps and proposal, as shown.
  sources?: Source[];
  steps?: ViewStep[];
  proposal?: ReviewView;
  stopReason?: StopReason;
}

export interface PromptItem {
  name: string;
  description: string;
}

export type ReviewAction = 'diff' | 'accept' | 'reject';

// Webview -> extension.
export type WebviewMessage =
  | { type: 'ready' }
  | {
      type: 'send';
      text: string;
      includeSelection: boolean;
      includeFile: boolean;
      mentions?: Mention[];
      prompt?: string; // a prompt-library name: text is what the user typed after /name
    }
  | { type: 'stop' }
  | { type: 'clear' }
  | { type: 'copy'; code: string }
  | { type: 'insert'; code: string }
  | { type: 'mode'; mode: ChatMode }
  | { type: 'openSource'; uri: string; range: Range }
  | { type: 'review'; action: ReviewAction; id: number; uri: string }
  | { type: 'reviewAll'; action: 'accept' | 'reject'; id: number }
  | { type: 'mentionQuery'; kind: 'file' | 'symbol'; query: string; seq: number }
  | { type: 'prompts' };

// Extension -> webview.
export type HostMessage =
  | { type: 'history'; turns: Turn[]; busy: boolean; mode: ChatMode }
  | { type: 'turn'; turn: Turn }
  | { type: 'mode'; mode: ChatMode }
  | { type: 'begin' }
  | { type: 'delta'; text: string }
  | { type: 'sources'; sources: Source[] }
  | { type: 'step'; step: ViewStep }
  | { type: 'proposal'; proposal: ReviewView }
  | { type: 'fileState'; id: number; uri: string; state: FileState; note?: string }
  | { type: 'end'; error?: string; cancelled?: boolean; stopReason?: StopReason }
  | { type: 'mentionItems'; seq: number; items: MentionItem[] }
  | { type: 'prompts'; prompts: PromptItem[] };

// A plain object, as structured cloning makes them (no inherited fields to trust).
function isRecord(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function isText(x: unknown): x is string {
  return typeof x === 'string' && x.length <= kMaxTextBytes;
}

function hasOnly(m: Record<string, unknown>, keys: readonly string[]): boolean {
  return Object.keys(m).every((k) => keys.includes(k));
}

function isShort(x: unknown): x is string {
  return typeof x === 'string' && x.length <= kMaxShort;
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isMode(x: unknown): x is ChatMode {
  return x === 'chat' || x === 'agent';
}

function cleanPosition(x: unknown): Range['start'] | undefined {
  if (!isRecord(x) || !hasOnly(x, ['line', 'character']) || !isCount(x.line) || !isCount(x.character)) return undefined;
  return { line: x.line, character: x.character };
}

function cleanRange(x: unknown): Range | undefined {
  if (!isRecord(x) || !hasOnly(x, ['start', 'end'])) return undefined;
  const start = cleanPosition(x.start);
  const end = cleanPosition(x.end);
  return start && end ? { start, end } : undefined;
}

// A copy of each element that `clean` accepts, or undefined when any is refused or there
// are more than `max`.
function cleanArray<T>(x: unknown, max: number, clean: (e: unknown) => T | undefined): T[] | undefined {
  if (!Array.isArray(x) || x.length > max) return undefined;
  const out: T[] = [];
  for (const e of x) {
    const c = clean(e);
    if (c === undefined) return undefined;
    out.push(c);
  }
  return out;
}

export function cleanSource(x: unknown): Source | undefined {
  if (!isRecord(x) || !hasOnly(x, ['uri', 'path', 'range', 'why'])) return undefined;
  const range = cleanRange(x.range);
  if (!range || !isShort(x.uri) || !isShort(x.path) || !isShort(x.why)) return undefined;
  return { uri: x.uri, path: x.path, range, why: x.why };
}

const kStepStatus: readonly string[] = ['running', 'done', 'refused', 'failed'];

export function cleanStep(x: unknown): ViewStep | undefined {
  if (!isRecord(x) || !hasOnly(x, ['id', 'tool', 'title', 'status', 'detail', 'sources'])) return undefined;
  if (!isCount(x.id) || !isShort(x.tool) || !isShort(x.title) || typeof x.status !== 'string') return undefined;
  if (!kStepStatus.includes(x.status)) return undefined;
  const step: ViewStep = { id: x.id, tool: x.tool, title: x.title, status: x.status as AgentStepStatus };
  if (x.detail !== undefined) {
    if (!isText(x.detail)) return undefined;
    step.detail = x.detail;
  }
  if (x.sources !== undefined) {
    const sources = cleanArray(x.sources, kMaxSources, cleanSource);
    if (!sources) return undefined;
    step.sources = sources;
  }
  return step;
}

const kFileStates: readonly string[] = ['pending', 'accepted', 'rejected', 'changed', 'failed'];

function isFileState(x: unknown): x is FileState {
  return typeof x === 'string' && kFileStates.includes(x);
}

function cleanReviewFile(x: unknown): ReviewFile | undefined {
  if (!isRecord(x) || !hasOnly(x, ['uri', 'path', 'created', 'added', 'removed', 'state', 'note'])) return undefined;
  if (!isShort(x.uri) || !isShort(x.path) || typeof x.created !== 'boolean') return undefined;
  if (!isCount(x.added) || !isCount(x.removed) || !isFileState(x.state)) return undefined;
  const f: ReviewFile = { uri: x.uri, path: x.path, created: x.created, added: x.added, removed: x.removed, state: x.state };
  if (x.note !== undefined) {
    if (!isShort(x.note)) return undefined;
    f.note = x.note;
  }
  return f;
}

function cleanReview(x: unknown): ReviewView | undefined {
  if (!isRecord(x) || !hasOnly(x, ['id', 'files']) || !isCount(x.id)) return undefined;
  const files = cleanArray(x.files, kMaxFiles, cleanReviewFile);
  return files ? { id: x.id, files } : undefined;
}

const kStopReasons: readonly string[] = ['answer', 'stepLimit', 'noTools'];

function isStopReason(x: unknown): x is StopReason {
  return typeof x === 'string' && kStopReasons.includes(x);
}

function cleanTurn(x: unknown): Turn | undefined {
  if (!isRecord(x) || !hasOnly(x, ['role', 'content', 'sources', 'steps', 'proposal', 'stopReason'])) return undefined;
  if ((x.role !== 'user' && x.role !== 'assistant') || !isText(x.content)) return undefined;
  const t: Turn = { role: x.role, content: x.content };
  if (x.sources !== undefined) {
    const sources = cleanArray(x.sources, kMaxSources, cleanSource);
    if (!sources) return undefined;
    t.sources = sources;
  }
  if (x.steps !== undefined) {
    const steps = cleanArray(x.steps, kMaxSteps, cleanStep);
    if (!steps) return undefined;
    t.steps = steps;
  }
  if (x.proposal !== undefined) {
    const proposal = cleanReview(x.proposal);
    if (!proposal) return undefined;
    t.proposal = proposal;
  }
  if (x.stopReason !== undefined) {
    if (!isStopReason(x.stopReason)) return undefined;
    t.stopReason = x.stopReason;
  }
  return t;
}

export function cleanMention(x: unknown): Mention | undefined {
  if (!isRecord(x)) return undefined;
  switch (x.kind) {
    case 'file': {
      if (!hasOnly(x, ['kind', 'uri', 'range']) || !isShort(x.uri) || !x.uri) return undefined;
      if (x.range === undefined) return { kind: 'file', uri: x.uri };
      const range = cleanRange(x.range);
      return range ? { kind: 'file', uri: x.uri, range } : undefined;
    }
    case 'symbol':
      return hasOnly(x, ['kind', 'name']) && isShort(x.name) && x.name ? { kind: 'symbol', name: x.name } : undefined;
    case 'codebase':
    case 'openEditors':
      return hasOnly(x, ['kind']) ? { kind: x.kind } : undefined;
    default:
      return undefined;
  }
}

export function cleanMentionItem(x: unknown): MentionItem | undefined {
  if (!isRecord(x) || !hasOnly(x, ['label', 'detail', 'uri', 'range'])) return undefined;
  if (!isShort(x.label) || !isShort(x.detail) || !isShort(x.uri)) return undefined;
  const item: MentionItem = { label: x.label, detail: x.detail, uri: x.uri };
  if (x.range !== undefined) {
    const range = cleanRange(x.range);
    if (!range) return undefined;
    item.range = range;
  }
  return item;
}

function cleanPrompt(x: unknown): PromptItem | undefined {
  if (!isRecord(x) || !hasOnly(x, ['name', 'description']) || !isShort(x.name) || !isShort(x.description)) return undefined;
  return { name: x.name, description: x.description };
}

// A prompt's name as the chat input takes it after '/'.
export const kPromptName = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

// The message when `x` is exactly a WebviewMessage (no unknown fields, sizes within the
// caps), otherwise undefined.
export function parseWebviewMessage(x: unknown): WebviewMessage | undefined {
  if (!isRecord(x) || typeof x.type !== 'string') return undefined;
  switch (x.type) {
    case 'ready':
    case 'stop':
    case 'clear':
      return hasOnly(x, ['type']) ? { type: x.type } : undefined;
    case 'send': {
      if (
        !hasOnly(x, ['type', 'text', 'includeSelection', 'includeFile', 'mentions', 'prompt']) ||
        !isText(x.text) ||
        typeof x.includeSelection !== 'boolean' ||
        typeof x.includeFile !== 'boolean'
      ) {
        return undefined;
      }
      const m: WebviewMessage = {
        type: 'send',
        text: x.text,
        includeSelection: x.includeSelection,
        includeFile: x.includeFile,
      };
      if (x.mentions !== undefined) {
        const mentions = cleanArray(x.mentions, kMaxMentions, cleanMention);
        if (!mentions) return undefined;
        if (mentions.length) m.mentions = mentions;
      }
      if (x.prompt !== undefined) {
        if (typeof x.prompt !== 'string' || !kPromptName.test(x.prompt)) return undefined;
        m.prompt = x.prompt;
      }
      // A prompt may run on the context alone; a plain question needs words.
      if (!m.prompt && x.text.trim().length === 0) return undefined;
      return m;
    }
    case 'copy':
    case 'insert':
      return hasOnly(x, ['type', 'code']) && isText(x.code) ? { type: x.type, code: x.code } : undefined;
    case 'mode':
      return hasOnly(x, ['type', 'mode']) && isMode(x.mode) ? { type: 'mode', mode: x.mode } : undefined;
    case 'openSource': {
      if (!hasOnly(x, ['type', 'uri', 'range']) || !isShort(x.uri)) return undefined;
      const range = cleanRange(x.range);
      return range ? { type: 'openSource', uri: x.uri, range } : undefined;
    }
    case 'review':
      if (
        hasOnly(x, ['type', 'action', 'id', 'uri']) &&
        (x.action === 'diff' || x.action === 'accept' || x.action === 'reject') &&
        isCount(x.id) &&
        isShort(x.uri)
      ) {
        return { type: 'review', action: x.action, id: x.id, uri: x.uri };
      }
      return undefined;
    case 'reviewAll':
      if (hasOnly(x, ['type', 'action', 'id']) && (x.action === 'accept' || x.action === 'reject') && isCount(x.id))
        return { type: 'reviewAll', action: x.action, id: x.id };
      return undefined;
    case 'mentionQuery':
      if (
        hasOnly(x, ['type', 'kind', 'query', 'seq']) &&
        (x.kind === 'file' || x.kind === 'symbol') &&
        isShort(x.query) &&
        isCount(x.seq)
      ) {
        return { type: 'mentionQuery', kind: x.kind, query: x.query, seq: x.seq };
      }
      return undefined;
    case 'prompts':
      return hasOnly(x, ['type']) ? { type: 'prompts' } : undefined;
    default:
      return undefined;
  }
}

// The message when `x` is exactly a HostMessage, otherwise undefined.
export function parseHostMessage(x: unknown): HostMessage | undefined {
  if (!isRecord(x) || typeof x.type !== 'string') return undefined;
  switch (x.type) {
    case 'history': {
      if (!hasOnly(x, ['type', 'turns', 'busy', 'mode']) || typeof x.busy !== 'boolean' || !isMode(x.mode)) return undefined;
      const turns = cleanArray(x.turns, kMaxTurns, cleanTurn);
      return turns ? { type: 'history', turns, busy: x.busy, mode: x.mode } : undefined;
    }
    case 'turn': {
      const turn = hasOnly(x, ['type', 'turn']) ? cleanTurn(x.turn) : undefined;
      return turn ? { type: 'turn', turn } : undefined;
    }
    case 'mode':
      return hasOnly(x, ['type', 'mode']) && isMode(x.mode) ? { type: 'mode', mode: x.mode } : undefined;
    case 'begin':
      return hasOnly(x, ['type']) ? { type: 'begin' } : undefined;
    case 'delta':
      return hasOnly(x, ['type', 'text']) && isText(x.text) ? { type: 'delta', text: x.text } : undefined;
    case 'sources': {
      const sources = hasOnly(x, ['type', 'sources']) ? cleanArray(x.sources, kMaxSources, cleanSource) : undefined;
      return sources ? { type: 'sources', sources } : undefined;
    }
    case 'step': {
      const step = hasOnly(x, ['type', 'step']) ? cleanStep(x.step) : undefined;
      return step ? { type: 'step', step } : undefined;
    }
    case 'proposal': {
      const proposal = hasOnly(x, ['type', 'proposal']) ? cleanReview(x.proposal) : undefined;
      return proposal ? { type: 'proposal', proposal } : undefined;
    }
    case 'fileState': {
      if (!hasOnly(x, ['type', 'id', 'uri', 'state', 'note'])) return undefined;
      if (!isCount(x.id) || !isShort(x.uri) || !isFileState(x.state)) return undefined;
      const m: HostMessage = { type: 'fileState', id: x.id, uri: x.uri, state: x.state };
      if (x.note !== undefined) {
        if (!isShort(x.note)) return undefined;
        m.note = x.note;
      }
      return m;
    }
    case 'end': {
      if (!hasOnly(x, ['type', 'error', 'cancelled', 'stopReason'])) return undefined;
      if (x.error !== undefined && !isText(x.error)) return undefined;
      if (x.cancelled !== undefined && typeof x.cancelled !== 'boolean') return undefined;
      if (x.stopReason !== undefined && !isStopReason(x.stopReason)) return undefined;
      const m: HostMessage = { type: 'end' };
      if (x.error !== undefined) m.error = x.error;
      if (x.cancelled !== undefined) m.cancelled = x.cancelled;
      if (x.stopReason !== undefined) m.stopReason = x.stopReason;
      return m;
    }
    case 'mentionItems': {
      if (!hasOnly(x, ['type', 'seq', 'items']) || !isCount(x.seq)) return undefined;
      const items = cleanArray(x.items, kMaxItems, cleanMentionItem);
      return items ? { type: 'mentionItems', seq: x.seq, items } : undefined;
    }
    case 'prompts': {
      const prompts = hasOnly(x, ['type', 'prompts']) ? cleanArray(x.prompts, kMaxPrompts, cleanPrompt) : undefined;
      return prompts ? { type: 'prompts', prompts } : undefined;
    }
    default:
      return undefined;
  }
}
