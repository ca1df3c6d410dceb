// Buttons on the article: "Translate this chapter" (Urdu) and "Personalize for me". Sections stream
// into a reader view above the original, which is hidden until "Show original".

import { h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { followChapter } from "./stream.js";
import { CSS } from "./styles.js";

export class ChapterTools {
  /**
   * @param {object} options
   * @param {import("./api.js").Api} options.api
   * @param {() => string|null} options.page
   * @param {(url: string) => string|null} options.siteUrl
   */
  constructor({ api, page, siteUrl }) {
    Object.assign(this, { api, page, siteUrl });
    this.host = document.createElement("booktutor-chapter");
    const root = this.host.attachShadow({ mode: "open" });
    root.append(h("style", {}, CSS));
    this.translateButton = h("button", { type: "button", className: "secondary translate-chapter", onclick: () => this.run("translate") }, "Translate this chapter (اردو)");
    this.personalizeButton = h("button", { type: "button", className: "secondary personalize-chapter", onclick: () => this.run("personalize") }, "Personalize for me");
    this.originalButton = h("button", { type: "button", className: "secondary show-original", hidden: true, onclick: () => this.showOriginal() }, "Show original");
    this.progress = h("p", { className: "progress", role: "status", "aria-live": "polite" });
    this.view = h("div", { className: "chapter-view", hidden: true });
    root.append(h("div", { className: "bt" },
      h("div", { className: "chapter-bar", role: "group", "aria-label": "This chapter" },
        this.translateButton, this.personalizeButton, this.originalButton, this.progress),
      this.view));
    this.controller = null;
  }

  /** Put the bar at the top of `article` (again, after a single-page-app navigation). */
  attach(article) {
    if (this.article === article && article.contains(this.host)) return;
    this.showOriginal();
    this.article = article;
    article.prepend(this.host);
    this.refreshStatus();
  }

  async refreshStatus() {
    const page = this.page();
    if (!page) return;
    try {
      const status = await this.api.json("GET", `/v1/chapters/status?path=${encodeURIComponent(page)}&language=ur&personalized=true`);
      this.translateButton.textContent = "Translate this chapter (اردو)" + (status.translated?.ready ? " · ready" : "");
      this.personalizeButton.textContent = "Personalize for me" + (status.personalized?.ready ? " · ready" : "");
    } catch {
      /* the buttons still work; the "ready" hint is a nicety */
    }
  }

  setOriginalHidden(hidden) {
    for (const child of this.article?.children || []) {
      if (child !== this.host) child.hidden = hidden;
    }
  }

  async run(mode) {
    const page = this.page();
    if (!page) return;
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    const sections = [];
    this.view.replaceChildren();
    this.view.hidden = true;
    this.progress.classList.remove("error-text");
    this.progress.textContent = mode === "translate" ? "Translating this chapter…" : "Rewriting this chapter for you…";
    const path = mode === "translate" ? "/v1/chapters/translate" : "/v1/chapters/personalize";
    const body = mode === "translate" ? { path: page, language: "ur" } : { path: page };
    try {
      let total = 0;
      const final = await followChapter(this.api, path, body, {
        signal: controller.signal,
        onEvent: (name, data) => {
          if (name === "metadata") {
            total = data.sections;
            this.view.setAttribute("lang", data.language);
            this.view.setAttribute("dir", data.direction);
            this.view.dataset.mode = mode;
          } else if (name === "section") {
            const section = h("section", { className: "answer-body", "data-index": data.index });
            section.append(renderMarkdown(data.text));
            sections.push(section);
            this.view.append(section);
            this.view.hidden = false;
            this.originalButton.hidden = false;
            this.setOriginalHidden(true);
            this.progress.textContent = `Section ${sections.length} of ${total} ready.`;
          }
        },
      });
      if (final.name === "done") {
        this.progress.textContent = mode === "translate"
          ? `Chapter translated: ${final.data.sections} sections.`
          : `Chapter personalized for you: ${final.data.sections} sections.`;
        this.refreshStatus();
      } else {
        this.progress.textContent = final.data.message || "The chapter could not be finished.";
        this.progress.classList.add("error-text");
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      this.progress.textContent = error.message;
      this.progress.classList.add("error-text");
    }
  }

  showOriginal() {
    this.controller?.abort();
    this.view.hidden = true;
    this.view.replaceChildren();
    this.originalButton.hidden = true;
    this.setOriginalHidden(false);
    this.progress.textContent = "";
  }
}
