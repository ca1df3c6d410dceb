// Talking to booktutor's HTTP API: who the reader is (a token from the site, or a visitor id the
// server issued and signed), JSON requests, and errors turned into sentences a reader understands.

const VISITOR_KEY = "booktutor.visitor:";

/** A failure the widget can show as it is: `message` is already a sentence for the reader. */
export class TutorError extends Error {
  constructor(code, message, { status = 0, retryAfter = 0 } = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The sentence for an API error code; the server's own message when we have nothing better. */
export function readerMessage(code, serverMessage, retryAfter) {
  switch (code) {
    case "model_required":
      return "This needs a language model, and none is set up on the tutor's server yet. The site's owner can configure one.";
    case "rate_limited":
      return retryAfter
        ? `You have asked a lot in a short time. Please wait ${plural(retryAfter, "second")} and try again.`
        : "You have asked a lot in a short time. Please wait a moment and try again.";
    case "server_busy":
      return "The tutor is busy helping other readers right now. Please try again in a moment.";
    case "thread_busy":
      return "The tutor is still answering your previous question in this conversation. Wait for it to finish, or stop it.";
    case "profile_required":
      return "Fill in your profile first (“Profile” at the top of the tutor), so the chapter can be written for you.";
    case "auth_required":
    case "token_expired":
    case "invalid_token":
      return "Please sign in to the site to use the tutor.";
    case "network":
      return "The tutor cannot be reached. Check your connection and try again.";
    case "cancelled":
      return "Stopped.";
    case "thread_not_found":
      return "This conversation is no longer available. Your question was not sent; ask it again to start a new one.";
    case "index_empty":
      return "The tutor has no book to answer from yet.";
    default:
      return serverMessage || "Something went wrong. Please try again.";
  }
}

export class Api {
  /** @param {{api: string, getToken?: () => (string|null|Promise<string|null>)}} options */
  constructor({ api, getToken }) {
    this.base = api.replace(/\/+$/, "");
    this.getToken = getToken || null;
    this.visitorKey = VISITOR_KEY + this.base;
  }

  get visitorId() {
    try {
      return localStorage.getItem(this.visitorKey);
    } catch {
      return null;
    }
  }

  set visitorId(value) {
    try {
      if (value) localStorage.setItem(this.visitorKey, value);
      else localStorage.removeItem(this.visitorKey);
    } catch {
      /* storage blocked: the visitor simply gets a new id next time */
    }
  }

  async headers(extra = {}) {
    const headers = { ...extra };
    const token = this.getToken ? await this.getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (this.visitorId) headers["X-Visitor-Id"] = this.visitorId;
    return headers;
  }

  /** fetch() with the reader's identity; throws TutorError for any non-2xx answer. */
  async request(method, path, { body, headers = {}, signal, retried = false } = {}) {
    const init = { method, signal, headers: await this.headers(headers), credentials: "omit" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(this.base + path, init);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new TutorError("network", readerMessage("network"));
    }
    const issued = response.headers.get("X-Visitor-Id");
    if (issued && !init.headers.Authorization) this.visitorId = issued;
    if (response.ok) return response;

    let code = "http_" + response.status;
    let message = "";
    try {
      const payload = await response.json();
      code = payload?.error?.code || code;
      message = payload?.error?.message || "";
    } catch {
      /* not our JSON envelope (a proxy's error page) */
    }
    if (code === "invalid_visitor_id" && !retried) {
      // Our stored id is not one this server signed (its secret changed): start over as a new visitor.
      this.visitorId = null;
      return this.request(method, path, { body, headers, signal, retried: true });
    }
    const retryAfter = parseInt(response.headers.get("Retry-After") || "0", 10) || 0;
    if (response.status >= 500 && !message) code = code === "http_503" ? "server_busy" : code;
    throw new TutorError(code, readerMessage(code, message, retryAfter), { status: response.status, retryAfter });
  }

  async json(method, path, options) {
    const response = await this.request(method, path, options);
    return response.status === 204 ? null : response.json();
  }
}
