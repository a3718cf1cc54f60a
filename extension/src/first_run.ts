// First run: no model and no remote server yet. Offers to pick a GGUF file or to set up a
// remote OpenAI-compatible server; the settings' change restarts nothing, it is sent to
// the running server, which then loads the backend.
import * as vscode from 'vscode';

export async function firstRun(problem: string): Promise<void> {
  const pick = await vscode.window.showInformationMessage(problem, 'Pick Model File…', 'Use Remote Server…', 'Later');
  const c = vscode.workspace.getConfiguration('latent');
  const target = vscode.ConfigurationTarget.Global;
  if (pick === 'Pick Model File…') {
    const files = await vscode.window.showOpenDialog({
      title: 'Latent: a GGUF model (DeepSeek-V2/V3 family)',
      canSelectMany: false,
      filters: { 'GGUF models': ['gguf'] },
    });
    if (!files?.[0]) return;
    await c.update('modelPath', files[0].fsPath, target);
    await c.update('backend', 'local', target);
  } else if (pick === 'Use Remote Server…') {
    const url = await vscode.window.showInputBox({
      title: 'Latent: OpenAI-compatible server',
      prompt: 'Base URL (vLLM, SGLang, llama.cpp server, `latent serve`, https://api.deepseek.com/beta)',
      placeHolder: 'http://127.0.0.1:8000',
      ignoreFocusOut: true,
      validateInput: (v) => (/^https?:\/\/\S+$/.test(v.trim()) ? undefined : 'an http:// or https:// URL'),
    });
    if (!url) return;
    const model = await vscode.window.showInputBox({
      title: 'Latent: model name on that server',
      prompt: 'The `model` field of each request (empty if the server has one model)',
      ignoreFocusOut: true,
    });
    await c.update('remote.url', url.trim(), target);
    if (model !== undefined) await c.update('remote.model', model.trim(), target);
    await c.update('backend', 'remote', target);
    const key = await vscode.window.showInformationMessage('Does the server need an API key?', 'Set API Key', 'No');
    if (key === 'Set API Key') await vscode.commands.executeCommand('latent.setApiKey');
  }
}
