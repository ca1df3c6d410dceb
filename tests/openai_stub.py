"""A scripted, OpenAI-compatible HTTP server for tests.

The server runs for real on ``127.0.0.1`` (ephemeral port) in a background
thread, so code under test talks to it through the genuine ``openai`` /
``langchain-openai`` clients over real HTTP -- including SSE streaming and
streamed tool calls.  Only the standard library is used.

Typical use::

    with ScriptedOpenAI() as server:
        server.reply("Hello there")
        server.reply_tool_call("search_book", {"query": "PID"})
        llm = ChatOpenAI(base_url=server.base_url, api_key="test", model="gpt-test")
        ...
        assert server.requests[0]["messages"][-1]["content"] == "hi"

Endpoints
---------
``POST /v1/chat/completions``
    Answers with the next queued reply (``reply`` / ``reply_tool_call`` /
    ``reply_tool_calls`` / ``reply_error``); when the queue is empty the
    ``respond_with`` fallback is used, and without one the reply is ``"OK"``.
    ``"stream": true`` is answered with server-sent events shaped like
    OpenAI's ``chat.completion.chunk`` stream (a usage chunk is added when
    ``stream_options.include_usage`` is set).  The requested ``model`` is
    echoed back.  Each body is appended to ``requests`` before answering.
``POST /v1/embeddings``
    Deterministic unit vectors (8 dimensions unless the request sets
    ``dimensions``) derived from a SHA-256 hash of each input.  Honours
    ``encoding_format: "base64"`` (which the openai client asks for by
    default).  Bodies are recorded in ``embedding_requests``.
``GET /v1/models`` and ``GET /v1/models/<id>``
    One model, ``gpt-test``.

Anything else gets a 404 with an OpenAI-shaped error body.  Every handled
request (any path) is also recorded in ``all_requests`` as
``{"method", "path", "body"}``.

Note on errors: the openai client retries 408/409/429/5xx responses (twice by
default) -- a retried request consumes the *next* queued reply.  Pass
``retryable=False`` to ``reply_error`` (sends ``x-should-retry: false``) or
build the client with ``max_retries=0`` to see the error exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator

__all__ = ["ScriptedOpenAI"]

DEFAULT_MODEL = "gpt-test"
DEFAULT_REPLY = "OK"
EMBEDDING_DIMS = 8

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("conflict", None),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}

# "Word-ish" tokens: a run of non-space characters plus its trailing
# whitespace, or leading whitespace on its own.  "".join(tokens) == text.
_TOKEN_RE = re.compile(r"\S+\s*|\s+")


def _tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def _count_tokens(value: Any) -> int:
    """A crude but deterministic token count: words in all string content."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_count_tokens(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_count_tokens(v) for v in value)
    return 0


@dataclass
class _ToolCall:
    name: str
    arguments: dict[str, Any]
    call_id: str

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


@dataclass
class _Reply:
    kind: str  # "text" | "tool_calls" | "error"
    text: str = ""
    tool_calls: list[_ToolCall] = field(default_factory=list)
    status: int = 200
    message: str = ""
    retryable: bool | None = None


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its handler threads and sockets.

    ``close_connections`` force-closes any keep-alive connection still open
    and joins the handler threads, so ``stop()`` leaves no threads behind.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, owner: "ScriptedOpenAI"):
        self.owner = owner
        self._track_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._counter = itertools.count(1)
        super().__init__(address, handler)

    def process_request(self, request, client_address):  # type: ignore[override]
        t = threading.Thread(
            target=self._run_handler,
            args=(request, client_address),
            name=f"ScriptedOpenAI-conn-{next(self._counter)}",
            daemon=True,
        )
        with self._track_lock:
            self._connections.add(request)
            self._handler_threads.add(t)
        t.start()

    def _run_handler(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._track_lock:
                self._connections.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def close_connections(self, timeout: float = 5.0) -> None:
        with self._track_lock:
            conns = list(self._connections)
            threads = list(self._handler_threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request, client_address) -> None:  # pragma: no cover
        # Client went away / connection force-closed on stop: not interesting.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedOpenAI/1.0"
    # Idle keep-alive connections give up eventually even if never closed.
    timeout = 30

    server: _Server  # type: ignore[assignment]

    # ------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _path(self) -> str:
        path = self.path.split("?", 1)[0]
        return path.rstrip("/") or "/"

    def _read_body(self) -> tuple[dict[str, Any] | None, str | None]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}, None
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, f"Invalid JSON body: {exc}"
        if not isinstance(body, dict):
            return None, "Request body must be a JSON object"
        return body, None

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_stub_{next(self.server._counter)}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_json(
        self, status: int, message: str, *, retryable: bool | None = None, code: str | None = None
    ) -> None:
        err_type, default_code = _ERROR_TYPES.get(
            status, ("invalid_request_error" if status < 500 else "server_error", None)
        )
        headers = {}
        if retryable is not None:
            headers["x-should-retry"] = "true" if retryable else "false"
        self._send_json(
            status,
            {
                "error": {
                    "message": message,
                    "type": err_type,
                    "param": None,
                    "code": code if code is not None else default_code,
                }
            },
            headers,
        )

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_stub_{next(self.server._counter)}")
        self.end_headers()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _send_event(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._send_chunk(f"data: {text}\n\n".encode("utf-8"))

    def _end_sse(self) -> None:
        self._send_event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _record(self, body: Any) -> None:
        self.server.owner._record_any(self.command, self._path(), body)

    # ------------------------------------------------------------- routing
    def do_GET(self) -> None:  # noqa: N802
        path = self._path()
        self._record({})
        if path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [_model_obj(DEFAULT_MODEL)]})
        elif path.startswith("/v1/models/"):
            self._send_json(200, _model_obj(path[len("/v1/models/"):]))
        else:
            self._send_error_json(404, f"Unknown path: GET {path}", code="unknown_url")

    def do_POST(self) -> None:  # noqa: N802
        path = self._path()
        body, error = self._read_body()
        self._record(body if body is not None else {})
        if path == "/v1/chat/completions":
            if body is None:
                self._send_error_json(400, error or "bad request", retryable=False)
                return
            self.server.owner._record_chat(body)
            self._chat(body)
        elif path == "/v1/embeddings":
            if body is None:
                self._send_error_json(400, error or "bad request", retryable=False)
                return
            self.server.owner._record_embedding(body)
            self._embeddings(body)
        else:
            self._send_error_json(404, f"Unknown path: POST {path}", code="unknown_url")

    def do_PUT(self) -> None:  # noqa: N802
        self._read_body()
        self._record({})
        self._send_error_json(404, f"Unknown path: PUT {self._path()}", code="unknown_url")

    do_DELETE = do_PUT
    do_PATCH = do_PUT

    # -------------------------------------------------------------- chat
    def _chat(self, body: dict[str, Any]) -> None:
        owner = self.server.owner
        try:
            reply = owner._next_reply(body)
        except Exception as exc:  # fallback raised: surface it, don't retry
            self._send_error_json(500, f"respond_with fallback raised: {exc!r}", retryable=False)
            return
        if reply.kind == "error":
            self._send_error_json(reply.status, reply.message, retryable=reply.retryable)
            return

        model = body.get("model") or DEFAULT_MODEL
        completion_id = f"chatcmpl-stub{owner._next_id()}"
        created = int(time.time())
        prompt_tokens = _count_tokens(body.get("messages", []))

        if reply.kind == "text":
            tokens = _tokenize(reply.text)
            completion_tokens = len(tokens)
        else:
            completion_tokens = sum(
                max(1, len(tc.arguments_json) // 4) for tc in reply.tool_calls
            )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

        if not body.get("stream"):
            if reply.kind == "text":
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": reply.text,
                    "refusal": None,
                }
                finish = "stop"
            else:
                message = {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": tc.call_id,
                            "type": "function",
                            "function": {"name": tc.name, "arguments": tc.arguments_json},
                        }
                        for tc in reply.tool_calls
                    ],
                }
                finish = "tool_calls"
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_stub",
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                },
            )
            return

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_stub",
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }
            if include_usage:
                out["usage"] = None
            return out

        try:
            self._start_sse()
            if reply.kind == "text":
                self._send_event(chunk({"role": "assistant", "content": "", "refusal": None}))
                for n, tok in enumerate(tokens):
                    if owner.token_delay:
                        time.sleep(owner.token_delay)
                    if n == 1 and owner.keepalive_stall:
                        # Alive but saying nothing: SSE comments only, as servers send during long generations.
                        until = time.monotonic() + owner.keepalive_stall
                        while time.monotonic() < until:
                            self._send_chunk(b": keep-alive\n\n")
                            time.sleep(0.05)
                    self._send_event(chunk({"content": tok}))
                self._send_event(chunk({}, "stop"))
            else:
                first = True
                for index, tc in enumerate(reply.tool_calls):
                    head: dict[str, Any] = {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": tc.call_id,
                                "type": "function",
                                "function": {"name": tc.name, "arguments": ""},
                            }
                        ]
                    }
                    if first:
                        head = {"role": "assistant", "content": None, "refusal": None, **head}
                        first = False
                    self._send_event(chunk(head))
                    for frag in _fragments(tc.arguments_json):
                        self._send_event(
                            chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]})
                        )
                self._send_event(chunk({}, "tool_calls"))
            if include_usage:
                self._send_event(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_stub",
                        "choices": [],
                        "usage": usage,
                    }
                )
            self._end_sse()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    # -------------------------------------------------------- embeddings
    def _embeddings(self, body: dict[str, Any]) -> None:
        raw_input = body.get("input")
        if isinstance(raw_input, str) or (
            isinstance(raw_input, list) and raw_input and all(isinstance(x, int) for x in raw_input)
        ):
            inputs: list[Any] = [raw_input]
        elif isinstance(raw_input, list) and raw_input:
            inputs = list(raw_input)
        else:
            self._send_error_json(400, "'input' must be a non-empty string or array", retryable=False)
            return
        dims = body.get("dimensions") or EMBEDDING_DIMS
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for i, item in enumerate(inputs):
            vec = fake_embedding(item, dims)
            emb: Any = (
                base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
                if as_base64
                else vec
            )
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(x) if isinstance(x, list) else len(str(x).split()) for x in inputs)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "text-embedding-test",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def _model_obj(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "booktutor-tests"}


def _fragments(s: str, size: int = 7) -> Iterator[str]:
    if not s:
        return
    for i in range(0, len(s), size):
        yield s[i : i + size]


def fake_embedding(item: Any, dims: int = EMBEDDING_DIMS) -> list[float]:
    """Deterministic unit vector for ``item`` (a string or a token-id list)."""
    key = item if isinstance(item, str) else json.dumps(item)
    raw = b""
    counter = 0
    while len(raw) < 4 * dims:
        raw += hashlib.sha256(f"{counter}:{key}".encode("utf-8")).digest()
        counter += 1
    values = [
        (int.from_bytes(raw[4 * i : 4 * i + 4], "big") / 0xFFFFFFFF) * 2.0 - 1.0 for i in range(dims)
    ]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    # Round-trip through float32 so the float and base64 encodings agree.
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]


class ScriptedOpenAI:
    """Scripted OpenAI-compatible server; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._queue: deque[_Reply] = deque()
        self._fallback: Callable[[dict[str, Any]], str] | None = None
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: JSON bodies received on POST /v1/chat/completions, in order.
        self.requests: list[dict[str, Any]] = []
        #: JSON bodies received on POST /v1/embeddings, in order.
        self.embedding_requests: list[dict[str, Any]] = []
        #: Every handled request: {"method", "path", "body"}.
        self.all_requests: list[dict[str, Any]] = []
        #: Seconds to wait before each streamed token, to make an answer slow enough to interrupt.
        self.token_delay = 0.0
        #: Seconds of keep-alive comments (and no text) after a streamed reply's first token.
        self.keepalive_stall = 0.0

    def open_connections(self) -> set[socket.socket]:
        """The client connections open right now (keep-alive ones included)."""
        if self._server is None:
            return set()
        with self._server._track_lock:
            return set(self._server._connections)

    # ------------------------------------------------------------ scripting
    def reply(self, text: str) -> None:
        """Queue a plain assistant reply."""
        with self._lock:
            self._queue.append(_Reply("text", text=text))

    def reply_tool_call(self, name: str, arguments: dict[str, Any], call_id: str | None = None) -> None:
        """Queue a reply consisting of exactly one tool call."""
        self.reply_tool_calls([(name, arguments, call_id)])

    def reply_tool_calls(self, calls: Iterable[tuple[Any, ...]]) -> None:
        """Queue one reply with several (parallel) tool calls.

        Each item is ``(name, arguments)`` or ``(name, arguments, call_id)``.
        """
        tool_calls = []
        for item in calls:
            name, arguments, *rest = item
            call_id = rest[0] if rest and rest[0] else f"call_stub{self._next_id()}"
            tool_calls.append(_ToolCall(name, dict(arguments), call_id))
        if not tool_calls:
            raise ValueError("reply_tool_calls needs at least one call")
        with self._lock:
            self._queue.append(_Reply("tool_calls", tool_calls=tool_calls))

    def reply_error(self, status: int, message: str, *, retryable: bool | None = None) -> None:
        """Queue an HTTP error with an OpenAI-shaped ``{"error": {...}}`` body.

        ``retryable`` sets the ``x-should-retry`` header the openai client
        obeys; ``None`` (default) sends no header, like the real API.
        """
        if status < 400:
            raise ValueError("reply_error needs a 4xx/5xx status")
        with self._lock:
            self._queue.append(_Reply("error", status=status, message=message, retryable=retryable))

    def respond_with(self, fn: Callable[[dict[str, Any]], str] | None) -> None:
        """Fallback used when the queue is empty: ``fn(request_body) -> str``."""
        with self._lock:
            self._fallback = fn

    @property
    def pending(self) -> int:
        """Number of scripted replies not yet consumed."""
        with self._lock:
            return len(self._queue)

    # ------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("ScriptedOpenAI is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> "ScriptedOpenAI":
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler, self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ScriptedOpenAI-server",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()  # stops serve_forever; no new connections are handled
        server.close_connections()  # drop keep-alive sockets, join handler threads
        server.server_close()
        if thread is not None:
            thread.join(5.0)

    def __enter__(self) -> "ScriptedOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.stop()
        except Exception:
            pass

    # ------------------------------------------------------------- internals
    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _record_chat(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _record_embedding(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.embedding_requests.append(body)

    def _record_any(self, method: str, path: str, body: Any) -> None:
        with self._lock:
            self.all_requests.append({"method": method, "path": path, "body": body})

    def _next_reply(self, body: dict[str, Any]) -> _Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            fallback = self._fallback
        if fallback is None:
            return _Reply("text", text=DEFAULT_REPLY)
        return _Reply("text", text=str(fallback(body)))
