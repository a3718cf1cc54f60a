// The chat conversation on the extension's side: history (kept per workspace), one
// streaming answer at a time, stop. It talks to the webview only through `post` and to
// the server only through LatentApi, so it is tested without VS Code.
import { CancellationTokenSource } from 'vscode-jsonrpc';
import type { LatentApi, Outcome } from '../api';
import type { ChatParams, ChatResult, Range } from '../protocol';
import { HostMessage, kMaxTextBytes, kMaxTurns, Turn } from '../shared/messages';

export interface HistoryStore {
  get(): Turn[] | undefined;
  update(turns: Turn[]): Thenable<void> | Promise<void> | void;
}

// What a new question carries besides the text: the editor's document and selection.
export type ChatContext = ChatParams['context'];

// The most history sent with a question; the server keeps at most 64 messages, 256 KiB.
const kSendBytes = 192 * 1024;

export class ChatSession {
  private turns: Turn[];
  private running: { source: CancellationTokenSource; partial: string } | undefined;
  private post: (m: HostMessage) => void = () => undefined;

  constructor(
    private readonly api: () => LatentApi | undefined,
    private readonly store: HistoryStore,
  ) {
    this.turns = (store.get() ?? []).slice(-kMaxTurns);
  }

  get history(): readonly Turn[] {
    return this.turns;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  // The webview (re)loaded: give it the conversation, and the answer in progress.
  attach(post: (m: HostMessage) => void): void {
    this.post = post;
    post({ type: 'history', turns: [...this.turns], busy: this.busy });
    if (this.running) {
      post({ type: 'begin' });
      if (this.running.partial) post({ type: 'delta', text: this.running.partial });
    }
  }

  detach(): void {
    this.post = () => undefined;
  }

  async send(text: string, context: ChatContext): Promise<void> {
    const api = this.api();
    this.push({ role: 'user', content: text });
    if (!api) return this.fail('the Latent server is not running');
    const messages: { role: 'user' | 'assistant'; content: string }[] = [];
    let bytes = 0;
    for (let i = this.turns.length - 1; i >= 0; i--) {
      const t = this.turns[i]!;
      bytes += t.content.length;
      if (bytes > kSendBytes && messages.length) break;
      messages.unshift({ role: t.role, content: t.content });
    }
    await this.run((onText, token) => api.chat(messages, context, onText, token));
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
    await this.store.update([]);
    this.post({ type: 'history', turns: [], busy: false });
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

  private async run(
    request: (onText: (t: string) => void, token: CancellationTokenSource['token']) => Promise<Outcome<ChatResult>>,
  ): Promise<void> {
    this.stop(); // one answer at a time
    const running = { source: new CancellationTokenSource(), partial: '' };
    this.running = running;
    this.post({ type: 'begin' });
    const r = await request((text) => {
      if (this.running !== running) return;
      running.partial += text;
      this.post({ type: 'delta', text });
    }, running.source.token);
    running.source.dispose();
    // A newer question replaced this one: its answer owns the view and the history now.
    if (this.running !== running) return;
    this.running = undefined;
    // What the user saw is what the history keeps, even when stopped half way.
    const answer = r.kind === 'ok' ? r.value.text : running.partial;
    if (r.kind === 'ok' && r.value.text.length > running.partial.length && r.value.text.startsWith(running.partial))
      this.post({ type: 'delta', text: r.value.text.slice(running.partial.length) });
    if (r.kind === 'error') this.post({ type: 'end', error: r.message });
    else if (r.kind === 'cancelled') this.post({ type: 'end', cancelled: true });
    else this.post({ type: 'end' });
    if (answer) {
      this.turns.push({ role: 'assistant', content: answer.slice(0, kMaxTextBytes) });
      if (this.turns.length > kMaxTurns) this.turns.splice(0, this.turns.length - kMaxTurns);
      await this.store.update([...this.turns]);
    }
  }
}
