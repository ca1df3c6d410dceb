// Selecting text in the page's article shows a small popover: "Explain" or "Ask about this".

import { h } from "./dom.js";

const MAX_SELECTION_CHARS = 8000;

export class SelectionPopover {
  /**
   * @param {object} options
   * @param {ShadowRoot} options.root
   * @param {() => Element|null} options.article the page's article, where selections count
   * @param {(text: string) => void} options.onExplain
   * @param {(text: string) => void} options.onAsk
   */
  constructor({ root, article, onExplain, onAsk }) {
    this.article = article;
    this.text = "";
    const act = (callback) => () => {
      const text = this.text;
      this.hide();
      callback(text);
    };
    this.element = h("div", { className: "popover", role: "toolbar", "aria-label": "Ask the tutor about the selection", hidden: true },
      h("button", { type: "button", className: "explain", onclick: act(onExplain) }, "Explain"),
      h("button", { type: "button", className: "ask-about", onclick: act(onAsk) }, "Ask about this"));
    this.element.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.hide();
    });
    root.append(this.element);
    // mouseup for the mouse, keyup for Shift+arrow selections made from the keyboard.
    document.addEventListener("mouseup", (event) => this.maybeShow(event));
    document.addEventListener("keyup", (event) => {
      if (event.shiftKey || event.key === "Shift") this.maybeShow(event);
    });
    document.addEventListener("mousedown", (event) => {
      if (!event.composedPath().includes(this.element)) this.hide();
    });
  }

  maybeShow(event) {
    if (event.composedPath().includes(this.element)) return;
    // Let the browser settle the selection first.
    setTimeout(() => {
      const selection = document.getSelection();
      const text = selection?.toString().trim() || "";
      const article = this.article();
      if (!text || !article || selection.rangeCount === 0) return this.hide();
      const range = selection.getRangeAt(0);
      if (!article.contains(range.commonAncestorContainer)) return this.hide();
      this.text = text.slice(0, MAX_SELECTION_CHARS);
      const rect = range.getBoundingClientRect();
      this.element.style.top = `${window.scrollY + rect.bottom + 8}px`;
      this.element.style.left = `${Math.max(8, window.scrollX + rect.left)}px`;
      this.element.hidden = false;
    }, 0);
  }

  hide() {
    this.element.hidden = true;
  }
}
