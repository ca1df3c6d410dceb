// The chat panel: ask, watch the answer stream in with its sources, stop, rate, copy, translate;
// the reader's conversations and profile. Everything the reader sees is built from text nodes or
// sanitized Markdown.

import { h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { followRun } from "./stream.js";
import { TutorError, readerMessage } from "./api.js";

const LANGUAGES = [
  ["en", "English"],
  ["ur", "اردو (Urdu)"],
];
const LEVELS = [
  ["", "—"],
  ["beginner", "Beginner"],
  ["intermediate", "Intermediate"],
  ["advanced", "Advanced"],
];

export class Panel {
  /**
   * @param {object} options
   * @param {ShadowRoot} options.root where the panel lives
   * @param {import("./api.js").Api} options.api
   * @param {(url: string) => string|null} options.siteUrl maps a citation URL to this site's URL
   * @param {() => string|null} options.page the page's doc path or URL, sent with each question
   * @param {(name: string, detail: object) => void} options.emit site-facing events
   */
  constructor({ root, api, siteUrl, page, emit }) {
    Object.assign(this, { root, api, siteUrl, page, emit });
    this.threadId = null;
    this.running = null; // {controller, runId}
    this.pendingSelection = null;
    this.build();
  }

  // -- building ------------------------------------------------------------------------------------

  build() {
    this.launcher = h("button", {
      className: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "bt-panel",
      onclick: () => (this.isOpen ? this.close() : this.open()),
    }, "Ask the tutor");
    this.status = h("div", { className: "status", role: "status" });
    this.log = h("div", { className: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" },
      h("p", { className: "empty", text: "Ask anything about this book. Select text on the page to ask about it." }));
    this.threadsPane = h("div", { className: "pane threads", hidden: true });
    this.profilePane = h("div", { className: "pane profile", hidden: true });
    this.input = h("textarea", { rows: "2", "aria-label": "Your question", placeholder: "Ask about the book…", maxlength: "4000" });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.pendingQuote = h("blockquote", { className: "selection pending", hidden: true });
    this.sendButton = h("button", { className: "primary", type: "submit" }, "Ask");
    this.stopButton = h("button", { className: "secondary", type: "button", hidden: true, onclick: () => this.stop() }, "Stop");
    this.form = h("form", { className: "composer", onsubmit: (event) => (event.preventDefault(), this.submit()) },
      this.pendingQuote, h("div", { className: "row" }, this.input, this.sendButton, this.stopButton));
    this.panel = h("section", { id: "bt-panel", className: "panel", role: "dialog", "aria-label": "Book tutor", hidden: true },
      h("header", {},
        h("h2", { text: "Book tutor" }),
        h("button", { className: "icon new", type: "button", title: "New conversation", onclick: () => this.newConversation() }, "New"),
        h("button", { className: "icon threads-toggle", type: "button", title: "Your conversations", onclick: () => this.toggleThreads() }, "Chats"),
        h("button", { className: "icon profile-toggle", type: "button", title: "Your profile", onclick: () => this.toggleProfile() }, "Profile"),
        h("button", { className: "icon close", type: "button", title: "Close", "aria-label": "Close the tutor", onclick: () => this.close() }, "✕")),
      this.threadsPane, this.profilePane, this.log, this.status, this.form);
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.close();
      }
    });
    this.root.append(this.launcher, this.panel);
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  open() {
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.input.focus();
  }

  close() {
    this.panel.hidden = true;
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.focus();
  }

  say(text, { error = false } = {}) {
    this.status.textContent = text || "";
    this.status.classList.toggle("error", error);
  }

  // -- asking --------------------------------------------------------------------------------------

  /** Quote a selection above the next question (the reader then types it). */
  quote(selectedText) {
    this.pendingSelection = selectedText;
    this.pendingQuote.textContent = selectedText;
    this.pendingQuote.hidden = false;
    this.open();
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    const selectedText = this.pendingSelection;
    this.clearSelection();
    this.ask(text, { selectedText });
  }

  clearSelection() {
    this.pendingSelection = null;
    this.pendingQuote.hidden = true;
    this.pendingQuote.textContent = "";
  }

  /** Ask a question (optionally about a selected passage); resolves when the answer is done. */
  async ask(text, { selectedText = null, explain = false } = {}) {
    if (this.running) {
      this.say(readerMessage("thread_busy"), { error: true });
      return null;
    }
    this.open();
    this.log.querySelector(".empty")?.remove();
    const turn = this.addTurn({ question: text, selectedText });
    const body = { message: text, page: this.page() || undefined };
    if (this.threadId) body.thread_id = this.threadId;
    if (selectedText) body.selected_text = selectedText;
    const controller = new AbortController();
    this.running = { controller, runId: null };
    this.setBusy(true);
    this.say("Thinking…");
    let answer = "";
    let sources = [];
    try {
      const final = await followRun(this.api, explain ? "/v1/explain" : "/v1/chat", body, {
        signal: controller.signal,
        onReconnecting: () => this.say("Connection lost — reconnecting…"),
        onEvent: (name, data) => {
          if (name === "metadata") {
            this.running.runId = data.run_id;
            this.running.newThread = data.new_thread;
            this.threadId = data.thread_id;
          } else if (name === "step") {
            this.say(data.label ? `${data.label}…` : "Working…");
          } else if (name === "sources") {
            sources = data.sources || [];
            turn.showSources(sources);
          } else if (name === "token") {
            if (!answer) this.say("Writing…");
            answer += data.text;
            turn.renderAnswer(answer);
          }
        },
      });
      if (final.name === "done") {
        turn.finish(answer, final.data);
        this.say("");
        const detail = { text: answer, threadId: final.data.thread_id, messageId: final.data.message_id,
          citations: final.data.citations || [], sources, language: final.data.language, direction: final.data.direction };
        this.emit("answer", detail);
        return detail;
      }
      if (final.data.code === "cancelled" && this.running.newThread) this.threadId = null;
      turn.fail(answer, readerMessage(final.data.code, final.data.message), final.data);
      this.say("");
      this.emit("error", { code: final.data.code, message: final.data.message });
      return null;
    } catch (error) {
      // A first turn stopped before it was saved leaves no thread behind to continue.
      if (error.name === "AbortError" && this.running.newThread) this.threadId = null;
      if (error.code === "thread_not_found") this.threadId = null;
      const message = error.name === "AbortError" ? readerMessage("cancelled")
        : error instanceof TutorError ? error.message : readerMessage("network");
      turn.fail(answer, message, {});
      this.say("");
      this.emit("error", { code: error.code || "cancelled", message });
      return null;
    } finally {
      this.running = null;
      this.setBusy(false);
    }
  }

  async stop() {
    const running = this.running;
    if (!running) return;
    if (running.runId) {
      try {
        await this.api.request("POST", `/v1/runs/${encodeURIComponent(running.runId)}/cancel`);
      } catch {
        /* it ended on its own meanwhile */
      }
    }
    running.controller.abort();
  }

  setBusy(busy) {
    this.log.setAttribute("aria-busy", busy ? "true" : "false");
    this.stopButton.hidden = !busy;
    this.sendButton.disabled = busy;
    if (!busy && this.isOpen && this.root.activeElement === this.stopButton) this.input.focus();
  }

  newConversation() {
    if (this.running) this.stop();
    this.threadId = null;
    this.clearSelection();
    this.log.replaceChildren(h("p", { className: "empty", text: "New conversation. Ask anything about this book." }));
    this.say("");
    this.input.focus();
  }

  // -- one question and its answer -----------------------------------------------------------------

  addTurn({ question, selectedText, messageId = null }) {
    const sources = h("div", { className: "sources", hidden: true });
    const body = h("div", { className: "answer-body" });
    const actions = h("div", { className: "actions", hidden: true });
    const translation = h("div", { className: "translation", hidden: true });
    const element = h("article", { className: "turn" },
      selectedText ? h("blockquote", { className: "selection", text: selectedText }) : null,
      h("p", { className: "question", text: question }),
      h("div", { className: "answer" }, sources, body, actions, translation));
    this.log.append(element);
    element.scrollIntoView({ block: "end" });

    let cited = new Map();
    const linkFor = (n) => cited.get(n) || null;
    const panel = this;
    let frame = 0;
    const turn = {
      element,
      messageId,
      showSources(list) {
        cited = new Map(list.map((s) => [s.n, panel.siteUrl(s.url)]).filter(([, url]) => url));
        sources.replaceChildren(h("span", { text: "Sources:" }), h("ol", {}, list.map((s) => {
          const url = panel.siteUrl(s.url);
          const label = s.heading || s.title || s.path;
          return h("li", { value: s.n }, url ? h("a", { href: url, target: "_top" }, label) : label);
        })));
        sources.hidden = false;
      },
      renderAnswer(text, { now = false } = {}) {
        // Re-render on the next frame only: a fast stream costs one parse per frame, not per token.
        const draw = () => {
          frame = 0;
          const log = panel.log;
          const following = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
          body.replaceChildren(renderMarkdown(text, linkFor));
          // Keep the newest words in view, unless the reader scrolled up to read something else.
          if (following) log.scrollTop = log.scrollHeight;
        };
        if (now) return draw();
        if (!frame) frame = requestAnimationFrame(draw);
      },
      setDirection(language, direction) {
        body.setAttribute("lang", language || "en");
        body.setAttribute("dir", direction || "ltr");
      },
      finish(text, data) {
        if (frame) cancelAnimationFrame(frame);
        if (data.citations?.length && !cited.size) {
          cited = new Map(data.citations.map((c) => [c.n, panel.siteUrl(c.url)]).filter(([, url]) => url));
        }
        turn.setDirection(data.language, data.direction);
        turn.renderAnswer(text, { now: true });
        turn.messageId = data.message_id;
        element.dataset.messageId = data.message_id || "";
        element.dataset.state = "done";
        panel.addActions(actions, translation, text, data.message_id, data.thread_id || panel.threadId, data.language);
      },
      fail(text, message, data) {
        if (frame) cancelAnimationFrame(frame);
        if (text) turn.renderAnswer(text, { now: true });
        body.append(h("p", { className: "error-text", role: "alert", text: message }));
        element.dataset.state = "error";
        if (data?.message_id && text) panel.addActions(actions, translation, text, data.message_id, panel.threadId);
      },
    };
    return turn;
  }

  addActions(actions, translation, text, messageId, threadId, language = "en") {
    const feedbackForm = h("form", { className: "feedback-form", hidden: true });
    let rating = 0;
    const rate = (value, button) => {
      rating = value;
      for (const b of actions.querySelectorAll(".rate")) b.setAttribute("aria-pressed", String(b === button));
      feedbackForm.hidden = false;
      sendFeedback();
    };
    const sendFeedback = async (comment) => {
      try {
        await this.api.json("POST", `/v1/threads/${encodeURIComponent(threadId)}/messages/${encodeURIComponent(messageId)}/feedback`,
          { body: { rating, comment: comment || undefined } });
        this.say(comment ? "Thanks for the comment." : "Thanks for the feedback.");
      } catch (error) {
        this.say(error.message, { error: true });
      }
    };
    const comment = h("input", { type: "text", "aria-label": "Comment on this answer (optional)", placeholder: "What was good or wrong? (optional)", maxlength: "2000" });
    feedbackForm.append(comment, h("button", { type: "submit" }, "Send"));
    feedbackForm.addEventListener("submit", (event) => {
      event.preventDefault();
      sendFeedback(comment.value.trim());
      feedbackForm.hidden = true;
    });
    const up = h("button", { type: "button", className: "rate up", "aria-pressed": "false", onclick: () => rate(1, up) }, "Helpful");
    const down = h("button", { type: "button", className: "rate down", "aria-pressed": "false", onclick: () => rate(-1, down) }, "Not helpful");
    const copy = h("button", { type: "button", className: "copy", onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        this.say("Answer copied.");
      } catch {
        this.say("Copying is blocked by the browser; select the answer and copy it instead.", { error: true });
      }
    } }, "Copy");
    const urdu = h("button", { type: "button", className: "translate", lang: "en", onclick: async () => {
      urdu.disabled = true;
      this.say("Translating…");
      try {
        const result = await this.api.json("POST",
          `/v1/threads/${encodeURIComponent(threadId)}/messages/${encodeURIComponent(messageId)}/translate`, { body: { language: "ur" } });
        translation.replaceChildren(renderMarkdown(result.text));
        translation.setAttribute("lang", result.language);
        translation.setAttribute("dir", result.direction);
        translation.classList.add("answer-body");
        translation.hidden = false;
        this.say("");
      } catch (error) {
        this.say(error.message, { error: true });
        urdu.disabled = false;
      }
    } }, "Translate to Urdu");
    actions.replaceChildren(up, down, copy, language === "ur" ? "" : urdu, feedbackForm);
    actions.hidden = false;
  }

  // -- conversations -------------------------------------------------------------------------------

  async toggleThreads() {
    if (!this.threadsPane.hidden) return void (this.threadsPane.hidden = true);
    this.profilePane.hidden = true;
    this.threadsPane.hidden = false;
    this.threadsPane.replaceChildren(h("p", { text: "Loading your conversations…" }));
    try {
      const { threads } = await this.api.json("GET", "/v1/threads");
      const list = h("ul", {}, threads.map((thread) => h("li", { "data-thread-id": thread.thread_id },
        h("button", { type: "button", className: "open", onclick: () => this.reopen(thread.thread_id) }, thread.title || "Untitled"),
        h("button", { type: "button", className: "icon delete", "aria-label": `Delete “${thread.title || "Untitled"}”`,
          onclick: () => this.deleteThread(thread.thread_id) }, "Delete"))));
      this.threadsPane.replaceChildren(h("h3", { text: "Your conversations" }),
        threads.length ? list : h("p", { className: "empty", text: "No conversations yet." }));
      (list.querySelector("button") || this.threadsPane).focus?.();
    } catch (error) {
      this.threadsPane.replaceChildren(h("p", { className: "error-text", text: error.message }));
    }
  }

  async reopen(threadId) {
    try {
      const thread = await this.api.json("GET", `/v1/threads/${encodeURIComponent(threadId)}`);
      this.threadId = thread.thread_id;
      this.log.replaceChildren();
      let question = null;
      for (const message of thread.messages) {
        if (message.role === "user") {
          question = message;
          continue;
        }
        const turn = this.addTurn({ question: question?.content || "", selectedText: question?.selected_text });
        turn.showSources(message.citations || []);
        turn.finish(message.content, { ...message, message_id: message.id, thread_id: thread.thread_id });
        question = null;
      }
      this.threadsPane.hidden = true;
      this.say(`Reopened “${thread.title}”.`);
      this.input.focus();
    } catch (error) {
      this.say(error.message, { error: true });
    }
  }

  async deleteThread(threadId) {
    try {
      await this.api.request("DELETE", `/v1/threads/${encodeURIComponent(threadId)}`);
      this.threadsPane.querySelector(`li[data-thread-id="${CSS.escape(threadId)}"]`)?.remove();
      if (this.threadId === threadId) this.newConversation();
      this.say("Conversation deleted.");
    } catch (error) {
      this.say(error.message, { error: true });
    }
  }

  // -- profile -------------------------------------------------------------------------------------

  async toggleProfile() {
    if (!this.profilePane.hidden) return void (this.profilePane.hidden = true);
    this.threadsPane.hidden = true;
    this.profilePane.hidden = false;
    this.profilePane.replaceChildren(h("p", { text: "Loading your profile…" }));
    let profile;
    try {
      profile = await this.api.json("GET", "/v1/profile");
    } catch (error) {
      this.profilePane.replaceChildren(h("p", { className: "error-text", text: error.message }));
      return;
    }
    const field = (name, label, control) => {
      control.name = name;
      control.id = `bt-${name}`;
      return [h("label", { for: control.id, text: label }), control];
    };
    const select = (options, value) => h("select", {}, options.map(([code, label]) => h("option", { value: code, selected: code === value }, label)));
    const form = h("form", { className: "profile-form" },
      h("h3", { text: "Your profile" }),
      field("software_background", "Software background", h("input", { type: "text", value: profile.software_background, maxlength: "500" })),
      field("hardware_background", "Hardware background", h("input", { type: "text", value: profile.hardware_background, maxlength: "500" })),
      field("experience_level", "Level", select(LEVELS, profile.experience_level)),
      field("goals", "Goals", h("textarea", { rows: "2", maxlength: "1000" }, profile.goals)),
      field("preferred_language", "Answer language", select(LANGUAGES, profile.preferred_language || "en")),
      h("p", {}, h("button", { className: "primary", type: "submit" }, "Save profile")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = Object.fromEntries(new FormData(form).entries());
      try {
        const saved = await this.api.json("PUT", "/v1/profile", { body });
        this.emit("profile", saved);
        this.profilePane.hidden = true;
        this.say("Profile saved. Answers will follow it.");
        this.input.focus();
      } catch (error) {
        this.say(error.message, { error: true });
      }
    });
    this.profilePane.replaceChildren(form);
    form.querySelector("input")?.focus();
  }
}
