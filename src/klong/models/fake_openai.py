"""A deterministic OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

Replies come from a script (a list, consumed one per request) or from a function of the request body. A reply is a
dict with any of:

- `content`, `reasoning_content`, `tool_calls` (`[{"name": ..., "arguments": {...} or "raw string"}]`): the answer;
- `status` (e.g. 429, 500) and optional `message`: an error response in OpenAI's shape;
- `context_length_error: true`: the 400 a server sends when the prompt is too long;
- `delay`: seconds to wait before answering (slow answers, timeouts, fixed latency);
- `token_ids` (+ `logprobs`): returned as `logprobs.content` with `token_id:N` tokens, as vLLM does;
- `usage`: `{"prompt_tokens": .., "completion_tokens": ..}` (default: rough counts from the characters);
- `body` (a JSON object) or `raw` (text): sent as the 200 response instead (malformed answers: a choice without
  `message`, a truncated JSON body).

Every request body is kept in `requests`. Used as a context manager it serves in a background thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = dict[str, Any]
Responder = Callable[[dict[str, Any]], Reply]


class FakeOpenAIServer:
    def __init__(self, replies: Sequence[Reply] | Responder, *, latency: float = 0.0, model: str = "fake-model"):
        self._script = list(replies) if not callable(replies) else None
        self._responder = replies if callable(replies) else None
        self.latency = latency
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        """Request headers, in order (tests check the Authorization header reached the server)."""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # answer in one segment: without this, Nagle + delayed ACK add ~40 ms to every response
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with server._lock:
                    server.headers.append(dict(self.headers.items()))
                status, payload = server._answer(body)
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any] | str) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status >= 400:
                    self.send_header("retry-after-ms", "20")  # keep the SDK's backoff short in tests
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 512  # the default backlog (5) refuses connections under concurrent load

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- answers ---------------------------------------------------------------------------------------------------
    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self._responder is not None:
                index = len(self.requests) - 1
            elif self._script:
                return self._script.pop(0)
            else:
                return {"status": 500, "message": "fake server: script exhausted"}
        return self._responder(body) if self._responder else {"status": 500, "message": f"no reply {index}"}

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
        reply = self._next_reply(body)
        delay = self.latency + float(reply.get("delay", 0.0))
        if delay:
            time.sleep(delay)
        if reply.get("context_length_error"):
            return 400, {"error": {"message": "This model's maximum context length is 4096 tokens. However, you "
                                              "requested 5000 tokens. Please reduce the length of the messages.",
                                   "type": "BadRequestError", "param": None, "code": "context_length_exceeded"}}  # fmt: skip
        if "status" in reply:
            return int(reply["status"]), {"error": {"message": reply.get("message", "injected error"),
                                                    "type": "server_error", "param": None, "code": None}}  # fmt: skip
        if "raw" in reply:
            return 200, reply["raw"]
        if "body" in reply:
            return 200, reply["body"]
        return 200, self._completion(body, reply)

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        calls = []
        for i, call in enumerate(reply.get("tool_calls") or []):
            args = call.get("arguments", {})
            calls.append({"id": call.get("id", f"call_{len(self.requests)}_{i}"), "type": "function",
                          "function": {"name": call["name"],
                                       "arguments": args if isinstance(args, str) else json.dumps(args)}})  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
        if calls:
            message["tool_calls"] = calls
        if reply.get("reasoning_content") is not None:
            message["reasoning_content"] = reply["reasoning_content"]
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        if body.get("logprobs") and reply.get("token_ids") is not None:
            lps = reply.get("logprobs") or [-0.5] * len(reply["token_ids"])
            choice["logprobs"] = {"content": [{"token": f"token_id:{t}", "logprob": lp, "bytes": None, "top_logprobs": []}
                                              for t, lp in zip(reply["token_ids"], lps, strict=True)]}  # fmt: skip
        prompt_chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
        usage = reply.get("usage") or {"prompt_tokens": prompt_chars // 4 + 1,
                                       "completion_tokens": len(str(reply.get("content") or "")) // 4 + 1}  # fmt: skip
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0,
                "model": body.get("model", self.model), "choices": [choice], "usage": usage}  # fmt: skip
