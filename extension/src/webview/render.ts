// Markdown to safe HTML for the chat: markdown-it with raw HTML off (tags in an answer are
// shown as text), highlight.js for fenced code, then DOMPurify over the result as a second
// wall (only http(s)/mailto links, no images, forms, frames, styles or event handlers).
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/common';
import MarkdownIt from 'markdown-it';

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const md = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: false,
  highlight: (code: string, lang: string): string => {
    const language = lang.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
    if (language && hljs.getLanguage(language)) {
      try {
        const html = hljs.highlight(code, { language, ignoreIllegals: true }).value;
        return `<pre class="hljs"><code class="hljs language-${escapeHtml(language)}">${html}</code></pre>`;
      } catch {
        // fall through to plain text
      }
    }
    return `<pre class="hljs"><code class="hljs">${escapeHtml(code)}</code></pre>`;
  },
});

// Links outside http(s) and mailto are not links (markdown-it drops javascript:, vbscript:,
// file: and most data: by itself; this is the second check).
const kAllowedUri = /^(?:https?:|mailto:)/i;

DOMPurify.addHook('afterSanitizeAttributes', (node: Element) => {
  if (node.tagName === 'A') {
    const href = node.getAttribute('href') ?? '';
    if (!kAllowedUri.test(href)) node.removeAttribute('href');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

export function renderMarkdown(text: string): string {
  return DOMPurify.sanitize(md.render(text), {
    ALLOWED_URI_REGEXP: kAllowedUri,
    FORBID_TAGS: ['img', 'style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'object', 'embed', 'svg', 'math', 'video', 'audio', 'source', 'link', 'meta', 'base'],
    FORBID_ATTR: ['style', 'srcset', 'action', 'formaction'],
    ALLOW_DATA_ATTR: false,
  });
}
