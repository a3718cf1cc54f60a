// Latent's requests over any JSON-RPC connection: the vscode-languageclient client in the
// editor, a vscode-jsonrpc connection in the integration test. It knows the messages, the
// streaming of partial results and cancellation; it knows nothing of VS Code's UI.
import { randomUUID } from 'node:crypto';
import { CancellationToken, Disposable, ProgressType } from 'vscode-jsonrpc';
import {
  AgentStep,
  ChatMessage,
  ChatMode,
  ChatParams,
  ChatPartial,
  ChatResult,
  DidFocusParams,
  EditParams,
  EditResult,
  ErrorCodes,
  ExplainParams,
  Mention,
  MentionsParams,
  MentionsResult,
  Methods,
  NextEditFeedbackParams,
  NextEditParams,
  NextEditResult,
  PromptsResult,
  Range,
  Source,
  StatusResult,
} from './protocol';

// What both LanguageClient and vscode-jsonrpc's MessageConnection offer.
export interface Connection {
  sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R>;
  sendRequest<R>(method: string, params: unknown): Promise<R>;
  sendNotification(method: string, params: unknown): Promise<void> | void;
  onProgress<P>(type: ProgressType<P>, token: string | number, handler: (value: P) => void): Disposable;
}

export type Outcome<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'cancelled' }
  | { kind: 'error'; message: string };

const chatProgress = new ProgressType<ChatPartial>();

// What a chat request asks for besides the conversation, and where its partial results
// other than text go (sources once, before the text; agent steps as they start and end).
export interface ChatExtra {
  mode?: ChatMode;
  mentions?: Mention[];
  prompt?: string;
  conversationId?: string;
  onSources?: (sources: Source[]) => void;
  onStep?: (step: AgentStep) => void;
}

interface PartialHandlers {
  onText: (text: string) => void;
  onSources?: ((sources: Source[]) => void) | undefined;
  onStep?: ((step: AgentStep) => void) | undefined;
}

// One partial result to its handler; anything else is dropped (the shapes inside are
// checked again where they are shown, in shared/messages.ts).
function dispatchPartial(x: unknown, h: PartialHandlers): void {
  if (typeof x !== 'object' || x === null) return;
  const v = x as { text?: unknown; sources?: unknown; step?: unknown };
  if (typeof v.text === 'string') h.onText(v.text);
  else if (Array.isArray(v.sources)) h.onSources?.(v.sources as Source[]);
  else if (typeof v.step === 'object' && v.step !== null && typeof (v.step as { id?: unknown }).id === 'number')
    h.onStep?.(v.step as AgentStep);
}

// A JSON-RPC error as the user should read it; cancellation is not an error.
export function outcomeOf<T>(e: unknown): Outcome<T> {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (code === ErrorCodes.requestCancelled || code === ErrorCodes.serverCancelled) return { kind: 'cancelled' };
  const message = e instanceof Error ? e.message : String(e);
  return { kind: 'error', message };
}

export class LatentApi {
  constructor(private readonly conn: Connection) {}

  // vscode-jsonrpc takes every argument after the method as a parameter unless it is a
  // CancellationToken: an `undefined` token would turn params into [params, null].
  private request<R>(method: string, params: unknown, token?: CancellationToken): Promise<R> {
    return token ? this.conn.sendRequest<R>(method, params, token) : this.conn.sendRequest<R>(method, params);
  }

  // Sends a streaming request: each partial result goes to onText as it arrives, the
  // final result resolves the promise. Never throws: failures come back as an Outcome.
  private async stream<P extends { partialResultToken?: string | number }, R>(
    method: string,
    params: P,
    on: PartialHandlers,
    token?: CancellationToken,
  ): Promise<Outcome<R>> {
    const partialResultToken = `latent-${randomUUID()}`;
    const sub = this.conn.onProgress(chatProgress, partialResultToken, (v: unknown) => dispatchPartial(v, on));
    try {
      const value = await this.request<R>(method, { ...params, partialResultToken }, token);
      if (token?.isCancellationRequested) return { kind: 'cancelled' };
      return { kind: 'ok', value };
    } catch (e) {
      if (token?.isCancellationRequested) return { kind: 'cancelled' };
      return outcomeOf<R>(e);
    } finally {
      sub.dispose();
    }
  }

  chat(
    messages: ChatMessage[],
    context: ChatParams['context'],
    onText: (text: string) => void,
    token?: CancellationToken,
    extra: ChatExtra = {},
  ): Promise<Outcome<ChatResult>> {
    const params: ChatParams = { messages };
    if (context) params.context = context;
    if (extra.mode) params.mode = extra.mode;
    if (extra.mentions?.length) params.mentions = extra.mentions;
    if (extra.prompt) params.prompt = extra.prompt;
    if (extra.conversationId) params.conversationId = extra.conversationId;
    const on = { onText, onSources: extra.onSources, onStep: extra.onStep };
    return this.stream<ChatParams, ChatResult>(Methods.chat, params, on, token);
  }

  explain(uri: string, range: Range, onText: (text: string) => void, token?: CancellationToken) {
    const params: ExplainParams = { textDocument: { uri }, range };
    return this.stream<ExplainParams, ChatResult>(Methods.explain, params, { onText }, token);
  }

  edit(uri: string, range: Range, instruction: string, token?: CancellationToken, onText?: (text: string) => void) {
    const params: EditParams = { textDocument: { uri }, range, instruction };
    return this.stream<EditParams, EditResult>(Methods.edit, params, { onText: onText ?? (() => undefined) }, token);
  }

  // latent/mentions: the files or symbols for an '@file:' / '@symbol:' being typed.
  async mentions(params: MentionsParams, token?: CancellationToken): Promise<Outcome<MentionsResult>> {
    try {
      return { kind: 'ok', value: await this.request<MentionsResult>(Methods.mentions, params, token) };
    } catch (e) {
      if (token?.isCancellationRequested) return { kind: 'cancelled' };
      return outcomeOf<MentionsResult>(e);
    }
  }

  // latent/prompts: the prompt library (built-ins and the workspace's own).
  async prompts(token?: CancellationToken): Promise<Outcome<PromptsResult>> {
    try {
      return { kind: 'ok', value: await this.request<PromptsResult>(Methods.prompts, {}, token) };
    } catch (e) {
      return outcomeOf<PromptsResult>(e);
    }
  }

  async status(token?: CancellationToken): Promise<Outcome<StatusResult>> {
    try {
      return { kind: 'ok', value: await this.request<StatusResult>(Methods.status, null, token) };
    } catch (e) {
      return outcomeOf<StatusResult>(e);
    }
  }

  // latent/nextEdit: the next edits for the cursor; cancelled when the user types on.
  async nextEdit(params: NextEditParams, token?: CancellationToken): Promise<Outcome<NextEditResult>> {
    try {
      const value = await this.request<NextEditResult>(Methods.nextEdit, params, token);
      if (token?.isCancellationRequested) return { kind: 'cancelled' };
      return { kind: 'ok', value };
    } catch (e) {
      if (token?.isCancellationRequested) return { kind: 'cancelled' };
      return outcomeOf<NextEditResult>(e);
    }
  }

  async nextEditFeedback(params: NextEditFeedbackParams): Promise<void> {
    await this.conn.sendNotification(Methods.nextEditFeedback, params);
  }

  async didFocus(params: DidFocusParams): Promise<void> {
    await this.conn.sendNotification(Methods.didFocus, params);
  }
}

// The replacement text a latent/edit result proposes for `uri`, applied to `original`
// (the document's text): what the diff editor shows on its right side. Offsets are
// UTF-16 code units, like JavaScript strings and the server's default encoding.
export function applyTextEdits(original: string, edits: readonly { range: Range; newText: string }[]): string {
  const lineStarts = [0];
  for (let i = 0; i < original.length; i++) if (original.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const offset = (p: { line: number; character: number }): number => {
    if (p.line >= lineStarts.length) return original.length;
    const start = lineStarts[p.line] ?? original.length;
    const next = p.line + 1 < lineStarts.length ? (lineStarts[p.line + 1] ?? original.length) - 1 : original.length;
    return Math.min(start + p.character, Math.max(start, next));
  };
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  let out = original;
  for (const e of sorted) {
    const a = offset(e.range.start);
    const b = Math.max(a, offset(e.range.end));
    out = out.slice(0, a) + e.newText + out.slice(b);
  }
  return out;
}
