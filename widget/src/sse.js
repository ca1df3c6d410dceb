// Server-Sent Events read from a fetch() body. EventSource cannot POST, so the widget parses the
// stream itself: bytes are decoded with {stream: true} (a multi-byte Urdu letter split across two
// network chunks must not turn into two replacement characters), lines are buffered across chunks,
// and comment lines (heartbeats) are skipped.

/**
 * Yield {event, data, id} for every event in a ReadableStream of bytes.
 * `data` is the raw string; the caller parses JSON.
 */
export async function* readEvents(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let event = { event: "message", data: [], id: null };

  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A chunk may end between "\r" and "\n"; keep a trailing "\r" until we know what follows it.
      let end = done ? buffer.length : buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      let start = 0;
      const lineBreak = /\r\n|\r|\n/g;
      lineBreak.lastIndex = 0;
      let match;
      while ((match = lineBreak.exec(buffer)) && match.index < end) {
        const line = buffer.slice(start, match.index);
        start = match.index + match[0].length;
        if (line === "") {
          if (event.data.length) yield { event: event.event, data: event.data.join("\n"), id: event.id };
          event = { event: "message", data: [], id: event.id };
          continue;
        }
        if (line.startsWith(":")) continue; // heartbeat or comment
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event.event = text;
        else if (field === "data") event.data.push(text);
        else if (field === "id") event.id = text;
      }
      buffer = buffer.slice(start);
      if (done) return;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock?.();
  }
}
