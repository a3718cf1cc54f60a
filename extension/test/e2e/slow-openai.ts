// An OpenAI-compatible endpoint that answers every chat slowly: one word every 50 ms for up
// to a minute (SSE), and records whether the client hung up before the end. The tiny
// local model answers a chat in a fraction of a second, too fast to press Stop in.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlowAnswer {
  path: string;
  words: number; // words sent so far
  hungUp: boolean; // the client closed the connection before the answer ended
  ended: boolean;
}

export class SlowOpenAI {
  readonly answers: SlowAnswer[] = [];
  private readonly server: http.Server;
  private readonly hangups = new Set<() => void>();

  private constructor() {
    this.server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const a: SlowAnswer = { path: req.url ?? '', words: 0, hungUp: false, ended: false };
        this.answers.push(a);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chat = req.url === '/v1/chat/completions';
        const timer = setInterval(() => {
          if (a.words >= 1200) {
            clearInterval(timer);
            a.ended = true;
            res.end('data: [DONE]\n\n');
            return;
          }
          const text = `word${++a.words} `;
          const choice = chat ? { index: 0, delta: { content: text } } : { index: 0, text };
          res.write(`data: ${JSON.stringify({ choices: [choice] })}\n\n`);
        }, 50);
        res.on('close', () => {
          clearInterval(timer);
          if (!a.ended) {
            a.hungUp = true;
            for (const f of this.hangups) f();
          }
        });
      });
    });
  }

  static async start(): Promise<SlowOpenAI> {
    const s = new SlowOpenAI();
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  // Resolves when the client has hung up on the last answer.
  async hungUp(timeout = 10_000): Promise<SlowAnswer> {
    const last = this.answers[this.answers.length - 1];
    if (last?.hungUp) return last;
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.hangups.delete(done);
        resolve(this.answers[this.answers.length - 1]!);
      };
      const timer = setTimeout(() => {
        this.hangups.delete(done);
        reject(new Error(`the client did not hang up in ${timeout} ms`));
      }, timeout);
      this.hangups.add(done);
    });
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
