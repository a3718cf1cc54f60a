// The status bar item's text: backend, index progress, last completion latency. The model
// is plain data so the wording is tested without VS Code; status_bar.ts shows it.
import type { StatusResult } from './protocol';

export type ServerState = 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';

export interface StatusModel {
  server: ServerState;
  completionEnabled: boolean;
  status?: StatusResult; // the last latent/status answer
  lastLatencyMs?: number; // client-side round trip of the last completion
  problem?: string; // e.g. no model configured
}

export interface StatusView {
  text: string;
  tooltip: string;
  warning: boolean;
}

function indexText(s: StatusResult): string | undefined {
  if (!s.index.length) return undefined;
  if (s.index.some((i) => i.state === 'indexing')) {
    const files = s.index.reduce((n, i) => n + i.files, 0);
    return `$(sync~spin) indexing ${files} files`;
  }
  if (s.index.some((i) => i.state === 'failed')) return '$(warning) index failed';
  return undefined;
}

export function statusView(m: StatusModel): StatusView {
  const parts: string[] = [];
  let warning = false;
  const tips: string[] = [];
  switch (m.server) {
    case 'starting':
      parts.push('$(loading~spin) Latent');
      tips.push('Starting latent lsp…');
      break;
    case 'restarting':
      parts.push('$(debug-restart) Latent');
      tips.push('The server stopped; restarting…');
      warning = true;
      break;
    case 'stopped':
    case 'failed':
      parts.push('$(error) Latent');
      tips.push(m.server === 'failed' ? 'The server failed; run "Latent: Restart Server".' : 'The server is stopped.');
      warning = true;
      break;
    case 'running': {
      const backend = m.status?.backend ?? '…';
      parts.push(`${m.completionEnabled ? '$(sparkle)' : '$(circle-slash)'} Latent: ${shortBackend(backend)}`);
      tips.push(`Backend: ${backend}`);
      if (m.status?.backendError) {
        warning = true;
        tips.push(`Backend error: ${m.status.backendError}`);
      }
      break;
    }
  }
  if (m.status && m.server === 'running') {
    const ix = indexText(m.status);
    if (ix) parts.push(ix);
    for (const i of m.status.index) tips.push(`Index ${i.root}: ${i.state}, ${i.files} files, ${i.symbols} symbols`);
    if (m.status.completions > 0) {
      tips.push(
        `Completions: ${m.status.completions} (${m.status.suggestionCacheHits} from the suggestion cache); last: ` +
          `${m.status.lastCachedTokens} cached + ${m.status.lastComputedTokens} computed prompt tokens, ` +
          `${m.status.lastCompletionMs.toFixed(0)} ms in the server`,
      );
    }
  }
  const ne = m.server === 'running' ? m.status?.nextEdit : undefined;
  if (ne && ne.shown > 0) {
    tips.push(
      `Next edits: ${ne.shown} shown, ${ne.accepted} accepted, ${ne.dismissed} dismissed ` +
        `(${ne.index} from the index, ${ne.model} from the model)`,
    );
  }
  if (m.lastLatencyMs !== undefined && m.server === 'running') parts.push(`${Math.round(m.lastLatencyMs)} ms`);
  if (m.problem) {
    warning = true;
    tips.push(m.problem);
  }
  tips.push(m.completionEnabled ? 'Inline completion: on' : 'Inline completion: off (Alt+\\ still asks by hand)');
  tips.push('Click for details.');
  return { text: parts.join(' · '), tooltip: tips.join('\n'), warning };
}

// "local cpu /models/deepseek-coder-lite.gguf" is long for a status bar: file names only,
// then a cap on the length.
export function shortBackend(b: string): string {
  const clean = b
    .replace(/\s+/g, ' ')
    .replace(/(?:[^\s/]*\/)+([^\s/]+)/g, (m, name: string) => (m.includes('://') ? m : name))
    .trim();
  return clean.length > 28 ? clean.slice(0, 27) + '…' : clean;
}
