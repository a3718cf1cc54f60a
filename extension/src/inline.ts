// Wires the CompletionGate into the language client's inline completion middleware and
// into the status bar; toggling the setting is a command. onGhost hears where ghost text
// was offered (next edit suggestions give way to it).
import * as vscode from 'vscode';
import { CompletionGate, countItems } from './completion';
import { completionAllowedIn } from './completion_scope';
import type { Ctx } from './ctx';

export function activate(
  ctx: Ctx,
  onLatency: (ms: number) => void,
  onGhost?: (document: vscode.TextDocument, position: vscode.Position) => void,
): vscode.Disposable[] {
  const gate = new CompletionGate(
    () => ({ enabled: ctx.settings.completionEnabled, debounceMs: ctx.settings.debounceMs }),
    (o) => onLatency(o.ms),
  );
  ctx.addMiddleware({
    provideInlineCompletionItems: async (document, position, context, token, next) => {
      if (!completionAllowedIn(document, ctx.settings.completionExclude)) return undefined;
      const r = await gate.provide(context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke, token, () =>
        next(document, position, context, token),
      );
      if (r && !token.isCancellationRequested && countItems(r) > 0) onGhost?.(document, position);
      return r;
    },
  });
  return [
    vscode.commands.registerCommand('latent.toggleCompletion', async () => {
      const c = vscode.workspace.getConfiguration('latent');
      const now = !ctx.settings.completionEnabled;
      await c.update('completion.enabled', now, vscode.ConfigurationTarget.Global);
      void vscode.window.setStatusBarMessage(`Latent: inline completion ${now ? 'on' : 'off'}`, 2000);
    }),
  ];
}
