// A tutor run as the reader experiences it: start it with a POST, read its events, and when the
// connection drops, pick it up again from the last event seen (Last-Event-ID), so no token arrives
// twice and none is lost. The run lives on the server; only our view of it is interrupted.

import { readEvents } from "./sse.js";
import { TutorError, readerMessage } from "./api.js";

const RETRY_DELAYS_MS = [300, 1000, 2000, 4000, 8000, 8000, 8000];
const FINAL = new Set(["done", "error"]);

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * Run one streamed request and call `onEvent(name, data)` for every event, exactly once each.
 * `onReconnecting(attempt)` is called while the connection is being restored.
 * Resolves with the final event's {name, data}; rejects with TutorError when the run cannot be
 * started or followed.
 */
export async function followRun(api, path, body, { onEvent, onReconnecting, signal }) {
  let response = await api.request("POST", path, { body, headers: { Accept: "text/event-stream" }, signal });
  // The run's address comes with the response's headers, before any event: a connection that drops
  // with the first events still unread (they can arrive in the same read as the failure) is resumed
  // all the same.
  let runId = runIdOf(response);
  let lastId = null;
  let attempt = 0;

  for (;;) {
    try {
      for await (const item of readEvents(response.body, signal)) {
        let data;
        try {
          data = JSON.parse(item.data);
        } catch {
          continue;
        }
        if (item.id) lastId = item.id;
        if (item.event === "metadata" && data.run_id) runId = data.run_id;
        attempt = 0;
        onEvent(item.event, data);
        if (FINAL.has(item.event)) return { name: item.event, data };
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      // The connection broke mid-stream; fall through to resume.
    }
    if (signal?.aborted) throw new DOMException("stopped", "AbortError");
    if (!runId || attempt >= RETRY_DELAYS_MS.length) {
      throw new TutorError("network", "The connection was lost and could not be restored. Please ask again.");
    }
    onReconnecting?.(attempt + 1);
    await sleep(RETRY_DELAYS_MS[attempt++], signal);
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      response = await api.request("GET", `/v1/runs/${encodeURIComponent(runId)}/stream`, { headers, signal });
    } catch (error) {
      if (error.name === "AbortError" || (error instanceof TutorError && error.code !== "network" && error.status < 500)) {
        throw error;
      }
      response = { body: emptyBody() };
    }
  }
}

/** The run id in a run's stream URL (`Content-Location: /v1/runs/<id>/stream`), or null. */
function runIdOf(response) {
  const match = /\/runs\/([^/?#]+)\/stream/.exec(response.headers?.get("Content-Location") || "");
  return match ? decodeURIComponent(match[1]) : null;
}

/** A stream that ends at once, so a failed reconnect goes round the retry loop again. */
function emptyBody() {
  return new ReadableStream({ start: (controller) => controller.close() });
}

/**
 * Read a chapter stream (no resume: a repeat request streams the finished sections from the cache).
 */
export async function followChapter(api, path, body, { onEvent, signal }) {
  const response = await api.request("POST", path, { body, headers: { Accept: "text/event-stream" }, signal });
  let final = null;
  try {
    for await (const item of readEvents(response.body, signal)) {
      const data = JSON.parse(item.data);
      onEvent(item.event, data);
      if (FINAL.has(item.event)) final = { name: item.event, data };
    }
  } catch (error) {
    if (signal?.aborted) throw error;
  }
  if (!final) throw new TutorError("network", readerMessage("network"));
  return final;
}
