// The status bar item: polls latent/status (often while the index or the model loads,
// rarely otherwise) and shows statusView(); a click runs "Latent: Show Status".
import * as vscode from 'vscode';
import { firstRunProblem } from './config';
import type { Ctx } from './ctx';
import { StatusModel, statusView } from './status';

const kBusyPollMs = 1500;
const kIdlePollMs = 15000;

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('latent.status', vscode.StatusBarAlignment.Right, 100);
  private model: StatusModel;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.model = { server: ctx.state, completionEnabled: ctx.settings.completionEnabled };
    this.item.name = 'Latent';
    this.item.command = 'latent.showStatus';
    this.subs.push(
      ctx.onDidChangeState((s) => {
        this.model.server = s;
        if (s !== 'running') this.model.status = undefined;
        this.render();
        this.schedule(s === 'running' ? 200 : kIdlePollMs);
      }),
    );
    this.render();
    this.item.show();
  }

  completionLatency(ms: number): void {
    this.model.lastLatencyMs = ms;
    this.render();
  }

  settingsChanged(): void {
    this.render();
    this.schedule(300);
  }

  private render(): void {
    this.model.completionEnabled = this.ctx.settings.completionEnabled;
    this.model.problem = firstRunProblem(this.ctx.settings);
    const v = statusView(this.model);
    this.item.text = v.text;
    this.item.tooltip = v.tooltip;
    this.item.backgroundColor = v.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), ms);
  }

  private async poll(): Promise<void> {
    const api = this.ctx.api;
    if (!api || this.ctx.state !== 'running') return;
    const r = await api.status();
    if (r.kind === 'ok') this.model.status = r.value;
    this.render();
    const s = this.model.status;
    const busy = !s || s.backend === 'loading' || s.index.some((i) => i.state === 'indexing');
    this.schedule(busy ? kBusyPollMs : kIdlePollMs);
  }

  dispose(): void {
    clearTimeout(this.timer);
    for (const d of this.subs) d.dispose();
    this.item.dispose();
  }
}
