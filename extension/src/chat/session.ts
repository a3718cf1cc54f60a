// The chat conversation on the extension's side: history (kept per workspace) and its
// mode (chat or agent), one streaming answer at a time with its sources and agent steps,
// the proposal it ends with, stop. It talks to the webview only through `post`, to the
// server only through LatentApi and to the review only through ProposalSink, so it is
// tested without VS Code.
import { randomUUID } from 'node:crypto';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import type { ChatExtra, LatentApi, Outcome } from '../api';
import type { AgentStep, ChatMode, ChatParams, ChatResult, Mention, Proposal, Range, Source } from '../protocol';
import {
  cleanSource,
  cleanStep,
  FileState,
  HostMessage,
  kMaxSources,
  kMaxSteps,
  kMaxTextBytes,
  kMaxTurns,
  ReviewView,
  Turn,
  ViewStep,
} from '../shared/messages';

export interface HistoryStore {
  get(): Turn[] | undefined;
  update(turns: Turn[]): Thenable<void> | Promise<void> | void;
  // The conversation's mode; a store without it keeps the mode for the session only.
  getMode?(): ChatMode | undefined;
  updateMode?(mode: ChatMode): Thenable<void> | Promise<void> | void;
}

// Where a proposal goes for review (ProposalReview in the editor).
export interface ProposalSink {
  add(p: Proposal): ReviewView | undefined;
  startAfter(id: number): void;
}

// What a new question carries besides the text: the editor's document and selection.
export type ChatContext = ChatParams['context'];

export interface SendOptions {
  mentions?: Mention[];
  prompt?: string; // a prompt-library name; the text is what follows /name
}

// The most history sent with a question; the server keeps at most 64 messages, 256 KiB.
const kSendBytes = 192 * 1024;
// An agent step's result as the view keeps it (the server caps it near 4 KiB already).
const kStepDetailBytes = 16 * 1024;

// The view's copy of what the server sent, or undefined for what it cannot show.
export function viewSources(sources: readonly Source[] | undefined): Source[] {
  const out: Source[] = [];
  for (const s of (sources ?? []).slice(0, kMaxSources)) {
    const c = cleanSource({ uri: s?.uri, path: s?.path, range: s?.range, why: s?.why });
    if (c) out.push(c);
  }
  return out;
}

export function viewStep(s: AgentStep): ViewStep | undefined {
  const v: Record<string, unknown> = { id: s.id, tool: s.tool, title: s.title, status: s.status };
  if (typeof s.detail === 'string') v.detail = s.detail.slice(0, kStepDetailBytes);
  if (Array.isArray(s.sources) && s.sources.length) v.sources = viewSources(s.sources);
  return cleanStep(v);
}

interface Running {
  source: CancellationTokenSource;
  partial: string;
  sources: Source[];
  steps: Map<number, ViewStep>;
}

type Request = (
  onText: (t: string) => void,
  token: CancellationTokenSource['token'],
  extra: Pick<ChatExtra, 'onSources' | 'onStep'>,
) => Promise<Outcome<ChatResult>>;

export class ChatSession {
  private turns: Turn[];
  private currentMode: ChatMode;
  // The server keeps what it really sent in each conversation under this id (new with
  // each conversation; a restarted server simply does not know it).
  private conversationId = `chat-${randomUUID()}`;
  private running: Running | undefined;
  private post: (m: HostMessage) => void = () => undefined;
  // Every uri the conversation showed as a source or a proposed file: the only ones the
  // view may ask to open.
  private readonly shown = new Set<string>();

  constructor(
    private readonly api: () => LatentApi | undefined,
    private readonly store: HistoryStore,
    private readonly proposals?: ProposalSink,
  ) {
    this.turns = (store.get() ?? []).slice(-kMaxTurns);
    const m = store.getMode?.();
    this.currentMode = m === 'agent' ? 'agent' : 'chat';
    let last = 0;
    for (const t of this.turns) {
      this.remember(t.sources);
      for (const s of t.steps ?? []) this.remember(s.sources);
      if (t.proposal) {
        last = Math.max(last, t.proposal.id);
        for (const f of t.proposal.files) this.shown.add(f.uri);
      }
    }
    proposals?.startAfter(last);
  }

  get history(): readonly Turn[] {
    return this.turns;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  get mode(): ChatMode {
    return this.currentMode;
  }

  // Whether the view may open `uri`: it was shown to the user as a source or a file.
  hasShown(uri: string): boolean {
    return this.shown.has(uri);
  }

  private remember(sources: readonly Source[] | undefined): void {
    for (const s of sources ?? []) this.shown.add(s.uri);
  }

  // The webview (re)loaded: give it the conversation, and the answer in progress.
  attach(post: (m: HostMessage) => void): void {
    this.post = post;
    post({ type: 'history', turns: [...this.turns], busy: this.busy, mode: this.currentMode });
    const r = this.running;
    if (r) {
      post({ type: 'begin' });
      if (r.sources.length) post({ type: 'sources', sources: r.sources });
      for (const step of r.steps.values()) post({ type: 'step', step });
      if (r.partial) post({ type: 'delta', text: r.partial });
    }
  }

  detach(): void {
    this.post = () => undefined;
  }

  async setMode(mode: ChatMode): Promise<void> {
    this.currentMode = mode;
    this.post({ type: 'mode', mode });
    await this.store.updateMode?.(mode);
  }

  async send(text: string, context: ChatContext, options: SendOptions = {}): Promise<void> {
    const api = this.api();
    const shown = options.prompt ? `/${options.prompt}${text ? ' ' + text : ''}` : text;
    this.push({ role: 'user', content: shown });
    if (!api) return this.fail('the Latent server is not running');
    const messages: { role: 'user' | 'assistant'; content: string }[] = [];
    let bytes = 0;
    for (let i = this.turns.length - 1; i >= 0; i--) {
      const t = this.turns[i]!;
      bytes += t.content.length;
      if (bytes > kSendBytes && messages.length) break;
      messages.unshift({ role: t.role, content: t.content });
    }
    // The server renders a prompt around the words after /name, not the /name itself.
    if (options.prompt) messages[messages.length - 1]!.content = text;
    const mode = this.currentMode;
    const conversationId = this.conversationId;
    await this.run((onText, token, on) =>
      api.chat(messages, context, onText, token, {
        mode,
        conversationId,
        ...(options.mentions?.length ? { mentions: options.mentions } : {}),
        ...(options.prompt ? { prompt: options.prompt } : {}),
        ...on,
      }),
    );
  }

  async explain(uri: string, range: Range, label: string): Promise<void> {
    const api = this.api();
    this.push({ role: 'user', content: label });
    if (!api) return this.fail('the Latent server is not running');
    await this.run((onText, token) => api.explain(uri, range, onText, token));
  }

  stop(): void {
    this.running?.source.cancel();
  }

  async clear(): Promise<void> {
    this.stop();
    this.turns = [];
    this.conversationId = `chat-${randomUUID()}`;
    this.currentMode = 'chat'; // a new conversation starts as a chat
    await this.store.update([]);
    await this.store.updateMode?.('chat');
    this.post({ type: 'history', turns: [], busy: false, mode: 'chat' });
  }

  // A proposed file was accepted, rejected or refused: the conversation keeps its state
  // (so a reloaded view shows it) and the view shows it now. An empty uri: every file of
  // the proposal still pending.
  async fileState(id: number, uri: string, state: FileState, note?: string): Promise<void> {
    const turn = this.turns.find((t) => t.proposal?.id === id);
    for (const f of turn?.proposal?.files ?? []) {
      if (uri ? f.uri === uri : f.state === 'pending') {
        f.state = state;
        if (note) f.note = note;
        else delete f.note;
      }
    }
    const m: HostMessage = { type: 'fileState', id, uri, state };
    if (note) m.note = note;
    this.post(m);
    if (turn) await this.store.update([...this.turns]);
  }

  private push(t: Turn): void {
    const content = t.content.length > kMaxTextBytes ? t.content.slice(0, kMaxTextBytes) : t.content;
    const turn = { role: t.role, content };
    this.turns.push(turn);
    if (this.turns.length > kMaxTurns) this.turns.splice(0, this.turns.length - kMaxTurns);
    void this.store.update([...this.turns]);
    this.post({ type: 'turn', turn });
  }

  private fail(message: string): void {
    this.post({ type: 'begin' });
    this.post({ type: 'end', error: message });
  }

  private async run(request: Request): Promise<void> {
    this.stop(); // one answer at a time
    const running: Running = { source: new CancellationTokenSource(), partial: '', sources: [], steps: new Map() };
    this.running = running;
    this.post({ type: 'begin' });
    const live = () => this.running === running;
    const r = await request(
      (text) => {
        if (!live()) return;
        running.partial += text;
        this.post({ type: 'delta', text });
      },
      running.source.token,
      {
        onSources: (sources) => {
          if (!live()) return;
          running.sources = viewSources(sources);
          this.remember(running.sources);
          this.post({ type: 'sources', sources: running.sources });
        },
        onStep: (step) => {
          const v = viewStep(step);
          if (!live() || !v || (!running.steps.has(v.id) && running.steps.size >= kMaxSteps)) return;
          running.steps.set(v.id, v);
          this.remember(v.sources);
          this.post({ type: 'step', step: v });
        },
      },
    );
    running.source.dispose();
    // A newer question replaced this one: its answer owns the view and the history now.
    if (!live()) return;
    this.running = undefined;
    // What the user saw is what the history keeps, even when stopped half way.
    const answer = r.kind === 'ok' ? r.value.text : running.partial;
    const turn: Turn = { role: 'assistant', content: (answer ?? '').slice(0, kMaxTextBytes) };
    if (r.kind === 'ok') {
      const v = r.value;
      if (typeof v.text === 'string' && v.text.length > running.partial.length && v.text.startsWith(running.partial))
        this.post({ type: 'delta', text: v.text.slice(running.partial.length) });
      // The result holds the final state of everything streamed; it wins where given.
      if (Array.isArray(v.sources) && v.sources.length && !running.sources.length) {
        running.sources = viewSources(v.sources);
        this.remember(running.sources);
        this.post({ type: 'sources', sources: running.sources });
      }
      for (const step of Array.isArray(v.steps) ? v.steps.slice(0, kMaxSteps) : []) {
        const s = step ? viewStep(step) : undefined;
        if (!s) continue;
        const before = running.steps.get(s.id);
        running.steps.set(s.id, s);
        this.remember(s.sources);
        if (JSON.stringify(before) !== JSON.stringify(s)) this.post({ type: 'step', step: s });
      }
      if (v.proposal && this.proposals) {
        const review = this.proposals.add(v.proposal);
        if (review) {
          turn.proposal = review;
          for (const f of review.files) this.shown.add(f.uri);
          this.post({ type: 'proposal', proposal: review });
        }
      }
      if (v.stopReason === 'answer' || v.stopReason === 'stepLimit' || v.stopReason === 'noTools')
        turn.stopReason = v.stopReason;
    }
    if (r.kind === 'error') this.post({ type: 'end', error: r.message });
    else if (r.kind === 'cancelled') this.post({ type: 'end', cancelled: true });
    else if (turn.stopReason && turn.stopReason !== 'answer') this.post({ type: 'end', stopReason: turn.stopReason });
    else this.post({ type: 'end' });
    if (running.sources.length) turn.sources = running.sources;
    if (running.steps.size) turn.steps = [...running.steps.values()];
    if (turn.content || turn.steps || turn.proposal) {
      this.turns.push(turn);
      if (this.turns.length > kMaxTurns) this.turns.splice(0, this.turns.length - kMaxTurns);
      await this.store.update([...this.turns]);
    }
  }
}
