// Latent's VS Code extension: activation only. The context object (ctx.ts) owns the
// language client; each feature file registers what it needs.
import * as vscode from 'vscode';
import { ProposalReview } from './chat/proposal';
import { ChatSession } from './chat/session';
import { ChatView } from './chat/view';
import { Commands } from './commands';
import { classifyChange, currentSettings, firstRunProblem } from './config';
import { Ctx, kSecretApiKey } from './ctx';
import * as focus from './focus';
import * as inline from './inline';
import { NextEditController } from './next_edit';
import { EditReview } from './review';
import { StatusBar } from './status_bar';
import type { ChatMode } from './protocol';
import type { Turn } from './shared/messages';
import { firstRun } from './first_run';

let ctx: Ctx | undefined;

export async function activate(extension: vscode.ExtensionContext): Promise<void> {
  ctx = new Ctx(extension);
  const c = ctx;
  const status = new StatusBar(c);
  const review = new EditReview();
  const api = () => (c.state === 'running' ? c.api : undefined);
  // The proposal's file states go to the conversation, which is made just below.
  const proposals = new ProposalReview((id, uri, state, note) => void chat.fileState(id, uri, state, note));
  const chat: ChatSession = new ChatSession(
    api,
    {
      get: () => extension.workspaceState.get<Turn[]>('latent.chat.history'),
      update: (turns) => extension.workspaceState.update('latent.chat.history', turns),
      getMode: () => extension.workspaceState.get<ChatMode>('latent.chat.mode'),
      updateMode: (mode) => extension.workspaceState.update('latent.chat.mode', mode),
    },
    proposals,
  );
  const commands = new Commands(c, chat, review);
  const nextEdit = new NextEditController({
    api,
    settings: () => ({
      enabled: c.settings.nextEditEnabled,
      debounceMs: c.settings.nextEditDebounceMs,
      model: c.settings.nextEditModel,
    }),
    log: (line) => c.output.debug(line),
  });
  extension.subscriptions.push(
    c,
    status,
    review,
    proposals,
    vscode.window.registerWebviewViewProvider(
      ChatView.viewId,
      new ChatView(extension.extensionUri, chat, c.output, proposals, api),
    ),
    vscode.commands.registerCommand('latent.newChat', () => chat.clear()),
    ...commands.register(),
    ...inline.activate(
      c,
      (ms) => status.completionLatency(ms),
      (doc, pos) => nextEdit.ghostShown(doc, pos),
    ),
    ...nextEdit.activate(),
    ...focus.activate(c),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      const change = classifyChange((s) => e.affectsConfiguration(s));
      if (change === 'none') return;
      c.settings = currentSettings();
      status.settingsChanged();
      nextEdit.settingsChanged();
      if (change === 'restart') await c.restart();
      else if (change === 'server') await c.sendSettings();
    }),
    extension.secrets.onDidChange(async (e) => {
      if (e.key === kSecretApiKey) await c.sendSettings();
    }),
  );
  await c.start();
  const problem = firstRunProblem(c.settings);
  if (problem) void firstRun(problem);
}

export async function deactivate(): Promise<void> {
  await ctx?.stop();
  ctx = undefined;
}
