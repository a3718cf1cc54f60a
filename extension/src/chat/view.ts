// The chat sidebar: a webview view in the Latent activity-bar container. Every message
// from the page is checked with parseWebviewMessage before it is acted on.
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { parseWebviewMessage, WebviewMessage } from '../shared/messages';
import { chatHtml, makeNonce } from './html';
import type { ChatContext, ChatSession } from './session';

export class ChatView implements vscode.WebviewViewProvider {
  static readonly viewId = 'latent.chat';

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly session: ChatSession,
    private readonly log: vscode.LogOutputChannel,
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

  private async handle(m: WebviewMessage, post: Parameters<ChatSession['attach']>[0]): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.session.attach(post);
        return;
      case 'send':
        return this.session.send(m.text, contextFor(m.includeSelection, m.includeFile));
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
