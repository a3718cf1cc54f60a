// When to restart a server that died: exponential backoff, and giving up after too many
// crashes in a short time (a server that cannot start should not flap forever).
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  maxCrashes: number; // within windowMs
  windowMs: number;
}

export const kBackoffDefaults: BackoffOptions = { initialMs: 1000, maxMs: 30000, maxCrashes: 5, windowMs: 3 * 60000 };

export class Backoff {
  private crashes: number[] = [];
  constructor(private readonly o: BackoffOptions = kBackoffDefaults) {}

  // Records a crash at `now`; returns the delay before the next start, or undefined when
  // the server crashed too often and should stay down until the user restarts it.
  crashed(now: number): number | undefined {
    this.crashes = this.crashes.filter((t) => now - t < this.o.windowMs);
    this.crashes.push(now);
    if (this.crashes.length > this.o.maxCrashes) return undefined;
    return Math.min(this.o.maxMs, this.o.initialMs * 2 ** (this.crashes.length - 1));
  }

  // A start by hand forgets past crashes.
  reset(): void {
    this.crashes = [];
  }
}
