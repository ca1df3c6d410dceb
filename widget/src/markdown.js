// Model output to DOM, safely: Markdown by `marked`, every tag and attribute checked by DOMPurify,
// and the result inserted as nodes (never as an HTML string). `[n]` markers become links to the
// cited section.

import { Marked } from "marked";
import DOMPurify from "dompurify";

const marked = new Marked({ gfm: true, breaks: false });

const ALLOWED = {
  ALLOWED_TAGS: [
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "hr", "span",
  ],
  ALLOWED_ATTR: ["href", "title", "align", "start"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|\/|#|\.)/i,
  RETURN_DOM_FRAGMENT: true,
};

const CITATION = /\[(\d{1,2})\]/g;

/**
 * A sanitized DocumentFragment for `markdown`. `linkFor(n)` gives the URL of source n (or null).
 */
export function renderMarkdown(markdown, linkFor = () => null) {
  const html = marked.parse(markdown || "", { async: false });
  const fragment = DOMPurify.sanitize(html, ALLOWED);
  for (const anchor of fragment.querySelectorAll("a[href]")) {
    anchor.target = "_top";
    anchor.rel = "noopener";
  }
  linkCitations(fragment, linkFor);
  for (const block of fragment.querySelectorAll("pre, code")) block.setAttribute("dir", "ltr");
  return fragment;
}

function linkCitations(root, linkFor) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement?.closest("code, pre, a")) continue;
    if (CITATION.test(node.data)) texts.push(node);
    CITATION.lastIndex = 0;
  }
  for (const node of texts) {
    const pieces = document.createDocumentFragment();
    let last = 0;
    for (const match of node.data.matchAll(CITATION)) {
      pieces.append(node.data.slice(last, match.index));
      const n = Number(match[1]);
      const url = linkFor(n);
      if (url) {
        const link = document.createElement("a");
        link.className = "bt-cite";
        link.href = url;
        link.target = "_top";
        link.textContent = `[${n}]`;
        link.setAttribute("aria-label", `source ${n}`);
        link.dataset.n = String(n);
        pieces.append(link);
      } else {
        pieces.append(match[0]);
      }
      last = match.index + match[0].length;
    }
    pieces.append(node.data.slice(last));
    node.replaceWith(pieces);
  }
}
