// booktutor's reader widget. One script tag on any page of a book:
//
//   <script src="https://tutor.example.org/widget.js" data-api="https://tutor.example.org" defer></script>
//
// Options (data-* attributes of that tag, or window.booktutorConfig set before it):
//   data-api          the booktutor server (default: where widget.js came from)
//   data-book-url     where this site serves the book's docs (default "/docs")
//   data-source-url   where the server's citation URLs put them (BOOKTUTOR_BOOK_URL, default "/docs")
//   data-article      CSS selector of the page's article (default: Docusaurus' article, then <main>)
//   data-page         this page's doc path, when the URL does not tell it
//   getToken          (booktutorConfig only) async () => a sign-in token, for sites with accounts

import { Api } from "./api.js";
import { Panel } from "./panel.js";
import { SelectionPopover } from "./selection.js";
import { ChapterTools } from "./chapter.js";
import { CSS } from "./styles.js";

const DEFAULT_ARTICLE = "article .markdown, article, main";

function readConfig(script) {
  const data = script?.dataset || {};
  const fromWindow = window.booktutorConfig || {};
  const scriptOrigin = script?.src ? new URL(script.src, location.href).origin : location.origin;
  const trim = (url) => (url || "").replace(/\/+$/, "");
  return {
    api: fromWindow.api || data.api || scriptOrigin,
    bookUrl: trim(fromWindow.bookUrl ?? data.bookUrl ?? "/docs"),
    sourceUrl: trim(fromWindow.sourceUrl ?? data.sourceUrl ?? "/docs"),
    article: fromWindow.article || data.article || DEFAULT_ARTICLE,
    page: fromWindow.page || data.page || null,
    getToken: fromWindow.getToken || null,
    chapterTools: (fromWindow.chapterTools ?? data.chapterTools ?? "true") !== "false",
  };
}

function start(script) {
  const config = readConfig(script);
  const api = new Api({ api: config.api, getToken: config.getToken });

  /** The page as the index knows it: this site's URL path, moved from bookUrl to sourceUrl. */
  const page = () => {
    if (config.page) return config.page;
    const path = location.pathname.replace(/\/+$/, "") || "/";
    if (path === config.bookUrl || path.startsWith(config.bookUrl + "/")) {
      return (config.sourceUrl + path.slice(config.bookUrl.length)) || "/";
    }
    return null;
  };

  /** A citation URL from the server as a link on this site; null for anything that is not a plain URL. */
  const siteUrl = (url) => {
    if (typeof url !== "string" || !url) return null;
    if (/^https?:\/\//i.test(url)) return url;
    if (!url.startsWith("/")) return null;
    if (url === config.sourceUrl || url.startsWith(config.sourceUrl + "/") || url.startsWith(config.sourceUrl + "#")) {
      return config.bookUrl + url.slice(config.sourceUrl.length);
    }
    return url;
  };

  const article = () => document.querySelector(config.article);

  const host = document.createElement("booktutor-widget");
  const root = host.attachShadow({ mode: "open" });
  root.append(Object.assign(document.createElement("style"), { textContent: CSS }));
  const shell = document.createElement("div");
  shell.className = "bt";
  root.append(shell);
  document.body.append(host);

  const emit = (name, detail) => window.dispatchEvent(new CustomEvent(`booktutor:${name}`, { detail }));
  const panel = new Panel({ root: shell, api, siteUrl, page, emit });
  new SelectionPopover({
    root: shell,
    article,
    onExplain: (text) => panel.ask("Explain this passage.", { selectedText: text, explain: true }),
    onAsk: (text) => panel.quote(text),
  });

  if (config.chapterTools) {
    const chapter = new ChapterTools({ api, page, siteUrl });
    // Docusaurus swaps the article on client-side navigation; put the bar back on the new one.
    let pending = 0;
    const place = () => {
      pending = 0;
      const found = article();
      if (found && page()) chapter.attach(found);
    };
    place();
    new MutationObserver(() => {
      if (!pending) pending = requestAnimationFrame(place);
    }).observe(document.body, { childList: true, subtree: true });
  }

  // Escape closes the panel from anywhere on the page, not only from inside it.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && panel.isOpen) panel.close();
  });

  window.booktutor = {
    open: () => panel.open(),
    close: () => panel.close(),
    /** Ask a question; resolves with the finished answer ({text, threadId, messageId, citations}) or null. */
    ask: (text, { selectedText = null } = {}) => panel.ask(text, { selectedText }),
    newConversation: () => panel.newConversation(),
    /** Listen for "answer" (an answer is done), "error" or "profile" (saved). */
    on: (name, callback) => window.addEventListener(`booktutor:${name}`, (event) => callback(event.detail)),
    get threadId() {
      return panel.threadId;
    },
  };
  emit("ready", {});
}

const script = document.currentScript;
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => start(script));
else start(script);
