// Inline completion: vscode-languageclient registers the provider that forwards to the
// server's textDocument/inlineCompletion; this gate sits in its middleware and adds what
// the library does not: the off switch, the debounce while the user types, and the
// latency figure for the status bar. Cancellation is VS Code's: a keystroke cancels the
// token, which ends the debounce wait early or sends $/cancelRequest for a request in flight.
import type { CancellationToken } from 'vscode-jsonrpc';

export interface GateSettings {
  enabled: boolean;
  debounceMs: number;
}

export interface GateClock {
  now(): number;
  // Resolves true after `ms`, or false as soon as `token` is cancelled.
  sleep(ms: number, token: CancellationToken): Promise<boolean>;
}

export const realClock: GateClock = {
  now: () => performance.now(),
  sleep: (ms, token) =>
    new Promise<boolean>((resolve) => {
      if (token.isCancellationRequested) return resolve(false);
      const sub = token.onCancellationRequested(() => {
        clearTimeout(timer);
        sub.dispose();
        resolve(false);
      });
      const timer = setTimeout(() => {
        sub.dispose();
        resolve(true);
      }, ms);
    }),
};

export interface CompletionOutcome {
  ms: number;
  items: number;
}

export class CompletionGate {
  private requested = 0;
  constructor(
    private readonly settings: () => GateSettings,
    private readonly onDone: (o: CompletionOutcome) => void,
    private readonly clock: GateClock = realClock,
  ) {}

  // How many requests went through to the server (tests).
  get forwarded(): number {
    return this.requested;
  }

  // `invoked`: the user asked by hand (the keybinding): no debounce, and it works even
  // when automatic completion is off. Returns undefined for "no suggestion".
  async provide<T>(invoked: boolean, token: CancellationToken, next: () => T | Thenable<T>): Promise<T | undefined> {
    const s = this.settings();
    if (!invoked && !s.enabled) return undefined;
    if (!invoked && s.debounceMs > 0 && !(await this.clock.sleep(s.debounceMs, token))) return undefined;
    if (token.isCancellationRequested) return undefined;
    const t0 = this.clock.now();
    this.requested++;
    const result = await next();
    if (token.isCancellationRequested) return undefined;
    this.onDone({ ms: this.clock.now() - t0, items: countItems(result) });
    return result;
  }
}

export function countItems(r: unknown): number {
  if (Array.isArray(r)) return r.length;
  const items = (r as { items?: unknown } | null | undefined)?.items;
  return Array.isArray(items) ? items.length : 0;
}
