// The commands: Explain Selection, Edit Selection…, Add Docs, Fix This (edits with a preset
// instruction), Set API Key, Show Status, Re-index Workspace, Restart Server, Show Log; and
// the server's own commands (its code actions) routed through the same UI.
import * as vscode from 'vscode';
import type { ChatSession } from './chat/session';
import { listPrompts } from './chat/view';
import type { Ctx } from './ctx';
import { kSecretApiKey } from './ctx';
import type { Range } from './protocol';
import type { EditReview } from './review';
import { statusUri, StatusReport } from './status_report';

export const kAddDocsInstruction =
  "Add documentation comments to this code in the language's usual style (docstrings, /** */, ///). " +
  'Do not change the code itself.';
export const kFixInstruction =
  'Fix the bugs in this code (wrong logic, off-by-one errors, missing checks, crashes). Keep its behaviour otherwise.';

export interface Target {
  document: vscode.TextDocument;
  range: vscode.Range;
}

function toLsp(r: vscode.Range): Range {
  return {
    start: { line: r.start.line, character: r.start.character },
    end: { line: r.end.line, character: r.end.character },
  };
}

// The selection of the active editor, or the arguments of a server code action
// ([uri, range]) when the command came from one.
export function targetOf(args: unknown[]): Target | undefined {
  const [uri, range] = args;
  if (typeof uri === 'string' && isLspRange(range)) {
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
    if (document) {
      return {
        document,
        range: new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character),
      };
    }
  }
  const editor = vscode.window.activeTextEditor;
  if (!editor) return undefined;
  return { document: editor.document, range: editor.selection };
}

function isLspRange(x: unknown): x is Range {
  const r = x as Range | undefined;
  return (
    typeof r?.start?.line === 'number' &&
    typeof r.start.character === 'number' &&
    typeof r.end?.line === 'number' &&
    typeof r.end.character === 'number'
  );
}

// "line 5" / "lines 5–10" for a selection: one that ends at column 0 of a line (after
// Shift+Down, a triple click) does not take that line.
export function linesLabel(r: { start: { line: number }; end: { line: number; character: number } }): string {
  const last = r.end.line > r.start.line && r.end.character === 0 ? r.end.line - 1 : r.end.line;
  return last === r.start.line ? `line ${r.start.line + 1}` : `lines ${r.start.line + 1}–${last + 1}`;
}

export function reindexParams(folders: { uri: string; name: string }[]) {
  return { event: { removed: folders, added: folders } };
}

export class Commands {
  private statusReport!: StatusReport;

  constructor(
    private readonly ctx: Ctx,
    private readonly chat: ChatSession,
    private readonly review: EditReview,
  ) {}

  register(): vscode.Disposable[] {
    const c = (id: string, f: (...args: unknown[]) => unknown) => vscode.commands.registerCommand(id, f);
    // The server's code actions run its command ids; the client would send them back to
    // the server as workspace/executeCommand (which applies an edit without review).
    this.ctx.addMiddleware({
      executeCommand: (command: string, args: unknown[], next: (command: string, args: unknown[]) => unknown) => {
        if (command === 'latent.explain') return this.explain(args);
        if (command === 'latent.edit') return this.edit(args);
        return next(command, args);
      },
    });
    this.statusReport = new StatusReport();
    return [
      this.statusReport,
      c('latent.explainSelection', (...a) => this.explain(a)),
      c('latent.editSelection', (...a) => this.edit(a)),
      c('latent.addDocs', (...a) => this.edit(a, kAddDocsInstruction)),
      c('latent.fixThis', (...a) => this.edit(a, kFixInstruction)),
      c('latent.runPrompt', () => this.runPrompt()),
      c('latent.setApiKey', () => this.setApiKey()),
      c('latent.showStatus', () => this.showStatus()),
      c('latent.reindex', () => this.reindex()),
      c('latent.restartServer', () => this.ctx.restart()),
      c('latent.showLog', () => this.ctx.output.show(true)),
    ];
  }

  private ready(): boolean {
    if (this.ctx.api && this.ctx.state === 'running') return true;
    void vscode.window.showWarningMessage('Latent: the server is not running.', 'Restart', 'Show Log').then((a) => {
      if (a === 'Restart') void this.ctx.restart();
      if (a === 'Show Log') this.ctx.output.show(true);
    });
    return false;
  }

  async explain(args: unknown[]): Promise<void> {
    const t = targetOf(args);
    if (!t || t.range.isEmpty) {
      void vscode.window.showInformationMessage('Latent: select the code to explain first.');
      return;
    }
    if (!this.ready()) return;
    await vscode.commands.executeCommand('latent.chat.focus');
    const name = t.document.uri.path.split('/').pop() ?? '';
    const lines = linesLabel(t.range);
    await this.chat.explain(t.document.uri.toString(), toLsp(t.range), `Explain ${name}, ${lines}`);
  }

  async edit(args: unknown[], preset?: string): Promise<void> {
    const t = targetOf(args);
    if (!t || t.range.isEmpty) {
      void vscode.window.showInformationMessage('Latent: select the code to edit first.');
      return;
    }
    let instruction = preset ?? (typeof args[2] === 'string' ? args[2] : undefined);
    instruction ??= await vscode.window.showInputBox({
      title: 'Latent: Edit Selection',
      prompt: 'How should the selected code change?',
      placeHolder: 'e.g. use a std::vector instead of the raw array',
      ignoreFocusOut: true,
    });
    if (!instruction?.trim()) return;
    if (!this.ready()) return;
    const api = this.ctx.api!;
    const version = t.document.version;
    const r = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Latent: editing the selection…', cancellable: true },
      (_p, token) => api.edit(t.document.uri.toString(), toLsp(t.range), instruction, token),
    );
    if (r.kind === 'cancelled') return;
    if (r.kind === 'error') {
      void vscode.window.showErrorMessage(`Latent: ${r.message}`);
      return;
    }
    if (!(await this.review.propose(t.document, version, r.value)))
      void vscode.window.showInformationMessage('Latent: the model proposed no change.');
  }

  // Latent: Run Prompt…: a prompt of the library on the selection (or else the file) of
  // the active editor, answered in the chat.
  async runPrompt(): Promise<void> {
    if (!this.ready()) return;
    const prompts = await listPrompts(this.ctx.api);
    if (!prompts.length) {
      void vscode.window.showInformationMessage('Latent: the server offers no prompts.');
      return;
    }
    const picked = await vscode.window.showQuickPick(
      prompts.map((p) => ({
        label: p.name,
        description: p.source === 'workspace' ? 'workspace' : '',
        detail: p.description,
      })),
      { title: 'Latent: Run Prompt', placeHolder: 'A prompt to run on the selection or the current file' },
    );
    if (!picked) return;
    const editor = vscode.window.activeTextEditor;
    let context: Parameters<ChatSession['send']>[1];
    if (editor) {
      const uri = editor.document.uri.toString();
      context = editor.selection.isEmpty ? { textDocument: { uri } } : { textDocument: { uri }, range: toLsp(editor.selection) };
    }
    await vscode.commands.executeCommand('latent.chat.focus');
    await this.chat.send('', context, { prompt: picked.label });
  }

  async setApiKey(): Promise<void> {
    const key = await vscode.window.showInputBox({
      title: 'Latent: API key for the remote server',
      prompt: 'Kept in VS Code\'s secret storage, never in settings. Leave empty to remove it.',
      password: true,
      ignoreFocusOut: true,
    });
    if (key === undefined) return;
    if (key.trim()) await this.ctx.extension.secrets.store(kSecretApiKey, key.trim());
    else await this.ctx.extension.secrets.delete(kSecretApiKey);
    // The secrets' change event sends the settings to the server (extension.ts).
    void vscode.window.showInformationMessage(key.trim() ? 'Latent: API key saved.' : 'Latent: API key removed.');
  }

  // The report opens as a read-only document (a dirty Untitled one asked to be saved
  // when closed); running the command again refreshes it in place.
  async showStatus(): Promise<void> {
    const api = this.ctx.api;
    const info: Record<string, unknown> = { server: this.ctx.state };
    if (api) {
      const r = await api.status();
      if (r.kind === 'ok') Object.assign(info, r.value);
      else if (r.kind === 'error') info.error = r.message;
    }
    this.statusReport.set(JSON.stringify(info, null, 2) + '\n');
    const doc = await vscode.workspace.openTextDocument(statusUri());
    await vscode.window.showTextDocument(doc, { preview: true });
  }

  // The server has no re-index request: removing and re-adding the workspace folders
  // makes it drop its indexes and walk the folders again (unchanged files are skipped by
  // their content hash). One notification with both lists: two would start two indexing
  // passes that race and index the same folder twice.
  async reindex(): Promise<void> {
    if (!this.ready()) return;
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => ({ uri: f.uri.toString(), name: f.name }));
    if (!folders.length) {
      void vscode.window.showInformationMessage('Latent: open a folder to index.');
      return;
    }
    await this.ctx.client!.sendNotification('workspace/didChangeWorkspaceFolders', reindexParams(folders));
    void vscode.window.setStatusBarMessage('Latent: re-indexing the workspace…', 3000);
  }
}
