// The chat webview's HTML: a fixed page that loads one script and one style sheet from
// the extension, under a Content-Security-Policy that allows nothing else (no inline
// script without the nonce, no remote anything). Used by the view and by the browser test.
export interface ChatHtmlOptions {
  cspSource: string; // webview.cspSource: the origin of the extension's local resources
  nonce: string;
  scriptUri: string;
  styleUri: string;
}

export function csp(o: Pick<ChatHtmlOptions, 'cspSource' | 'nonce'>): string {
  return [
    "default-src 'none'",
    `img-src ${o.cspSource} data:`,
    `style-src ${o.cspSource}`,
    `font-src ${o.cspSource}`,
    `script-src 'nonce-${o.nonce}'`,
    "connect-src 'none'",
    "frame-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

function attr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

export function chatHtml(o: ChatHtmlOptions): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(csp(o))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${attr(o.styleUri)}">
<title>Latent Chat</title>
</head>
<body>
<main id="log" aria-live="polite"></main>
<form id="composer">
  <ul id="popup" role="listbox" aria-label="Suggestions" hidden></ul>
  <div id="chips" aria-label="Mentions"></div>
  <textarea id="input" rows="3" aria-autocomplete="list" aria-controls="popup" placeholder="Ask about your code… @ to mention, / for prompts (Enter to send, Shift+Enter for a new line)"></textarea>
  <div class="row">
    <span class="mode" role="radiogroup" aria-label="Mode">
      <button type="button" id="mode-chat" role="radio" aria-checked="true" title="Answer from the context you give">Chat</button>
      <button type="button" id="mode-agent" role="radio" aria-checked="false" title="Search, read and propose edits with tools; you review every change">Agent</button>
    </span>
    <label><input type="checkbox" id="include-selection"> Selection</label>
    <label><input type="checkbox" id="include-file"> Current file</label>
    <span class="spacer"></span>
    <button type="button" id="stop" class="secondary" hidden>Stop</button>
    <button type="submit" id="send">Send</button>
  </div>
</form>
<script nonce="${attr(o.nonce)}" src="${attr(o.scriptUri)}"></script>
</body>
</html>
`;
}

// A nonce for one page load (128 random bits, base64).
export function makeNonce(random: (n: number) => Uint8Array): string {
  return Buffer.from(random(16)).toString('base64');
}
