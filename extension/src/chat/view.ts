// The chat sidebar: a webview view in the Latent activity-bar container. Every message
// from the page is checked with parseWebviewMessage before it is acted on; the page may
// open only what the conversation showed it, and never writes a file but through the
// review's Accept.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import type { LatentApi } from '../api';
import type { PromptInfo } from '../protocol';
import { cleanMentionItem, HostMessage, kPromptName, MentionItem, parseWebviewMessage, WebviewMessage } from '../shared/messages';
import { chatHtml, makeNonce } from './html';
import type { ProposalReview } from './proposal';
import type { ChatContext, ChatSession } from './session';

// Items one '@file:' / '@symbol:' completion asks for.
const kMentionLimit = 20;

// The prompt library from the server (latent/prompts); an empty list when it has none.
export async function listPrompts(api: LatentApi | undefined): Promise<PromptInfo[]> {
  if (!api) return [];
  const r = await api.prompts();
  if (r.kind !== 'ok' || !Array.isArray(r.value?.prompts)) return [];
  return r.value.prompts.filter((p) => typeof p?.name === 'string' && kPromptName.test(p.name));
}

export class ChatView implements vscode.WebviewViewProvider {
  static readonly viewId = 'latent.chat';
  private mentionQuery: CancellationTokenSource | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly session: ChatSession,
    private readonly log: vscode.LogOutputChannel,
    private readonly review: ProposalReview,
    private readonly api: () => LatentApi | undefined,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    const webview = view.webview;
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview');
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    webview.options = { enableScripts: true, localResourceRoots: [dist, media] };
    webview.html = chatHtml({
      cspSource: webview.cspSource,
      nonce: makeNonce((n) => randomBytes(n)),
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, 'chat.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(media, 'chat.css')).toString(),
    });
    const subs = [
      webview.onDidReceiveMessage((raw: unknown) => {
        const m = parseWebviewMessage(raw);
        if (!m) {
          this.log.warn(`chat: ignored a malformed message from the webview: ${JSON.stringify(raw)?.slice(0, 200)}`);
          return;
        }
        void this.handle(m, (msg) => void webview.postMessage(msg));
      }),
    ];
    view.onDidDispose(() => {
      this.session.detach();
      for (const d of subs) d.dispose();
    });
  }

  private async handle(m: WebviewMessage, post: (m: HostMessage) => void): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.session.attach(post);
        return;
      case 'send': {
        const options: Parameters<ChatSession['send']>[2] = {};
        if (m.mentions) options.mentions = m.mentions;
        if (m.prompt) options.prompt = m.prompt;
        return this.session.send(m.text, contextFor(m.includeSelection, m.includeFile), options);
      }
      case 'mode':
        return this.session.setMode(m.mode);
      case 'openSource':
        return this.openSource(m.uri, m.range);
      case 'review':
        if (m.action === 'diff') return this.review.viewDiff(m.id, m.uri);
        if (m.action === 'accept') return void (await this.review.accept(m.id, m.uri));
        return this.review.reject(m.id, m.uri);
      case 'reviewAll':
        if (m.action === 'accept') return void (await this.review.acceptAll(m.id));
        return this.review.rejectAll(m.id);
      case 'mentionQuery':
        return this.mentions(m.kind, m.query, m.seq, post);
      case 'prompts': {
        const prompts = await listPrompts(this.api());
        post({ type: 'prompts', prompts: prompts.map((p) => ({ name: p.name, description: String(p.description ?? '') })) });
        return;
      }
      case 'stop':
        this.session.stop();
        return;
      case 'clear':
        return this.session.clear();
      case 'copy':
        await vscode.env.clipboard.writeText(m.code);
        void vscode.window.setStatusBarMessage('Latent: copied', 1500);
        return;
      case 'insert':
        return insertAtCursor(m.code);
    }
  }

  private async openSource(uri: string, range: Parameters<typeof toRange>[0]): Promise<void> {
    if (!this.session.hasShown(uri)) {
      this.log.warn(`chat: the view asked to open ${uri.slice(0, 200)}, which it was never shown`);
      return;
    }
    try {
      await vscode.window.showTextDocument(vscode.Uri.parse(uri), { selection: toRange(range), preview: true });
    } catch (e) {
      void vscode.window.showWarningMessage(`Latent: cannot open ${uri}: ${String(e)}`);
    }
  }

  // One '@file:' / '@symbol:' query at a time: a newer one cancels the one before.
  private async mentions(kind: 'file' | 'symbol', query: string, seq: number, post: (m: HostMessage) => void) {
    this.mentionQuery?.cancel();
    const source = new CancellationTokenSource();
    this.mentionQuery = source;
    const api = this.api();
    let items: MentionItem[] = [];
    if (api) {
      const r = await api.mentions({ kind, query, limit: kMentionLimit }, source.token);
      if (r.kind === 'error') this.log.warn(`chat: latent/mentions: ${r.message}`);
      if (r.kind === 'ok' && Array.isArray(r.value?.items)) {
        items = r.value.items.slice(0, kMentionLimit).flatMap((i) => {
          const c = cleanMentionItem(i);
          return c ? [c] : [];
        });
      }
    }
    const cancelled = source.token.isCancellationRequested;
    source.dispose();
    if (this.mentionQuery === source) this.mentionQuery = undefined;
    if (!cancelled) post({ type: 'mentionItems', seq, items });
  }
}

function toRange(r: { start: { line: number; character: number }; end: { line: number; character: number } }) {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}

// The document (and selection) the question is about, from the active editor.
export function contextFor(includeSelection: boolean, includeFile: boolean): ChatContext {
  const editor = vscode.window.activeTextEditor;
  if (!editor || (!includeSelection && !includeFile)) return undefined;
  const uri = editor.document.uri.toString();
  const sel = editor.selection;
  if (includeSelection && !sel.isEmpty) {
    return {
      textDocument: { uri },
      range: {
        start: { line: sel.start.line, character: sel.start.character },
        end: { line: sel.end.line, character: sel.end.character },
      },
    };
  }
  return includeFile ? { textDocument: { uri } } : undefined;
}

export async function insertAtCursor(code: string): Promise<void> {
  const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
  if (!editor) {
    void vscode.window.showInformationMessage('Latent: open an editor to insert the code into.');
    return;
  }
  await editor.edit((b) => {
    for (const s of editor.selections) b.replace(s, code);
  });
}
