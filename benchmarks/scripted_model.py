"""A scripted OpenAI-compatible model on asyncio, cheap enough to serve a thousand streams at once.

tests/openai_stub.py runs a thread per connection, which is fine for tests but would itself be the
bottleneck at 1,000 concurrent streams. This one answers `POST /v1/chat/completions` only:

- model `bench-rewrite` (the rewrite role): a short query, at once;
- any other model: `--tokens` tokens, `--delay-ms` apart, streamed as OpenAI chunks (or one JSON body
  when the request does not ask to stream).

`POST /control` with `{"tokens": n, "delay_ms": d}` changes the script for the requests that follow.

Run alone: `python benchmarks/scripted_model.py --port 9100 --tokens 200 --delay-ms 50`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

REWRITE_MODEL = "bench-rewrite"
WORDS = ("the", "derivative", "term", "looks", "at", "how", "fast", "error", "changes", "[1]")


def token(i: int) -> str:
    return WORDS[i % len(WORDS)] + " "


class ScriptedModel:
    def __init__(self, *, tokens: int, delay_ms: float) -> None:
        self.tokens = tokens
        self.delay = delay_ms / 1000

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                request = json.loads(body or b"{}")
                if lines[0].startswith("POST /control"):
                    # A benchmark changes the script between runs without restarting the servers using it.
                    self.tokens = request.get("tokens", self.tokens)
                    self.delay = request.get("delay_ms", self.delay * 1000) / 1000
                    writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                else:
                    await self.answer(request, writer)
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def answer(self, request: dict, writer: asyncio.StreamWriter) -> None:
        model = request.get("model", "bench-answer")
        rewrite = model == REWRITE_MODEL
        parts = ["derivative term PID controller"] if rewrite else [token(i) for i in range(self.tokens)]
        delay = 0 if rewrite else self.delay
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        if not request.get("stream"):
            body = json.dumps(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(parts), "total_tokens": 10 + len(parts)},
                }
            ).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")

        def chunk(payload: dict | str) -> bytes:
            data = b"data: " + (payload if isinstance(payload, str) else json.dumps(payload)).encode() + b"\n\n"
            return b"%x\r\n%s\r\n" % (len(data), data)

        writer.write(chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}))
        start = time.monotonic()
        for i, text in enumerate(parts):
            if delay:
                # Paced against the start, so a busy loop does not stretch the whole stream.
                await asyncio.sleep(max(0.0, start + (i + 1) * delay - time.monotonic()))
            writer.write(chunk({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}))
            await writer.drain()
        writer.write(chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": len(parts), "total_tokens": 10 + len(parts)}
            writer.write(chunk({**base, "choices": [], "usage": usage}))
        writer.write(chunk("[DONE]") + b"0\r\n\r\n")
        await writer.drain()


async def serve(port: int, tokens: int, delay_ms: float) -> None:
    model = ScriptedModel(tokens=tokens, delay_ms=delay_ms)
    server = await asyncio.start_server(model.handle, "127.0.0.1", port, backlog=4096)
    print(f"scripted model on http://127.0.0.1:{port}/v1 ({tokens} tokens, {delay_ms} ms apart)", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=50)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.tokens, args.delay_ms))


if __name__ == "__main__":
    main()
