"""``birdie serve``: an OpenAI-compatible HTTP server (stdlib ``ThreadingHTTPServer``) over a :class:`ModelPool`.

Routes (JSON bodies and replies only; errors are ``{"error": {"message", "type", "code"}}`` with a 4xx/5xx
status, never a crash):

* ``POST /v1/completions``: see :mod:`birdie.harness.endpoint`.
* ``POST /tokenize``, ``POST /detokenize``, ``GET /tokenizer_info``: lm-eval's remote tokenizer (they use the
  body's or query's ``model``, else the first served model).
* ``GET /v1/models``; ``GET /health``: 200 once a smoke forward pass of the active (else the first) model gave
  finite log-probs, else 503 with the reason (a model that fails to load or computes NaN is not healthy).

Transport: a thread per connection, a listen backlog of :data:`LISTEN_BACKLOG` (so a burst of clients arriving
together is queued, not reset) and ``TCP_NODELAY`` on accepted sockets (a kept-alive request would otherwise wait
~40 ms for Nagle's algorithm and the client's delayed ACK). Every malformed request -- invalid or non-standard JSON
(``NaN``), nesting too deep to parse, a wrong type or value -- is answered with a 4xx and a JSON error.

Binds 127.0.0.1 by default; there is no authentication, so expose it beyond the machine only behind your own.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from birdie.harness.endpoint import RequestError, ServerLimits
from birdie.harness.pool import ModelPool

log = logging.getLogger(__name__)

#: queued connections before the kernel refuses more (socketserver's default of 5 resets a burst of clients)
LISTEN_BACKLOG = 1024
_POST_ROUTES = {"/v1/completions": "completions", "/tokenize": "tokenize", "/detokenize": "detokenize"}


class _Handler(BaseHTTPRequestHandler):
    server: "CompletionServer"
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds a client may stall mid-request (e.g. a body shorter than its Content-Length)

    def log_message(self, format: str, *args: Any) -> None:  # route the stdlib's access log to logging
        log.debug("%s - %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, _error_payload(status, message))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's answer to a malformed request line or headers, as JSON instead of HTML."""
        self.close_connection = True
        self._send(code, _error_payload(code, message or self.responses.get(code, ("error",))[0]))

    def _run(self, operation: str, body: dict[str, Any]) -> None:
        try:
            self._send(200, self.server.pool.call(body.get("model"), operation, body))
        except RequestError as error:
            self._error(error.status, error.message)
        except Exception as error:  # a model failure must not take the server down
            log.exception("request failed")
            self._error(500, f"{type(error).__name__}: {error}")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        model = parse_qs(url.query).get("model", [None])[0]
        if url.path == "/tokenizer_info":
            self._run("tokenizer_info", {"model": model} if model else {})
        elif url.path == "/v1/models":
            data = [{"id": name, "object": "model", "owned_by": "birdie"} for name in self.server.pool.models]
            self._send(200, {"object": "list", "data": data})
        elif url.path == "/health":
            problem = self.server.pool.health()
            if problem is None:
                self._send(200, {"status": "ok", "active_model": self.server.pool.active_name})
            else:
                self._send(503, {"status": "error", "active_model": self.server.pool.active_name,
                                 **_error_payload(503, problem)})
        else:
            self._error(404, f"no route GET {url.path}; see /v1/models, /tokenizer_info, /health")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if path not in _POST_ROUTES:
            self._error(404, f"no route POST {path}; see /v1/completions, /tokenize, /detokenize")
            return
        self._run(_POST_ROUTES[path], body)

    def _read_body(self) -> dict[str, Any] | None:
        """The JSON object in the request body, or None after answering with an error."""
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            self._error(411, "a Content-Length header (a JSON body) is required")
            return None
        length = int(length_header)
        if length > self.server.limits.max_body_bytes:
            self.close_connection = True  # the unread body must not be parsed as the next request
            self._error(413, f"the body has {length} bytes; the limit is {self.server.limits.max_body_bytes}")
            return None
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except ValueError as error:  # invalid JSON or UTF-8, or NaN/Infinity (which JSON does not have)
            self._error(400, f"the body is not valid JSON: {error}")
            return None
        except RecursionError:
            self._error(400, "the body's JSON is nested too deeply to parse")
            return None
        if not isinstance(body, dict):
            self._error(400, f"the body must be a JSON object; got {type(body).__name__}")
            return None
        return body


def _error_payload(status: int, message: str) -> dict[str, Any]:
    kinds = {404: "not_found_error", 413: "request_too_large"}
    kind = kinds.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "code": status}}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value; send a finite number")


class CompletionServer(ThreadingHTTPServer):
    """The HTTP server; ``serve_forever()`` blocks, ``shutdown()`` stops it from another thread.

    ``tcp_nodelay=False`` leaves Nagle's algorithm on (for the benchmark's before/after comparison only).
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, pool: ModelPool, host: str = "127.0.0.1", port: int = 8000, tcp_nodelay: bool = True) -> None:
        self.pool = pool
        self.limits = pool.limits
        self.tcp_nodelay = tcp_nodelay
        super().__init__((host, port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.tcp_nodelay:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def server_close(self) -> None:
        super().server_close()
        self.pool.close()


def make_server(
    models: dict[str, dict[str, Any] | str],
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    isolate: bool = False,
    tcp_nodelay: bool = True,
) -> CompletionServer:
    """Build (not start) a server for ``models`` (name -> load arguments); ``port=0`` picks a free port."""
    return CompletionServer(ModelPool(models, limits, isolate), host, port, tcp_nodelay)


def serve_in_thread(server: CompletionServer) -> threading.Thread:
    """Start ``server.serve_forever`` in a daemon thread (for notebooks and tests); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="birdie-serve", daemon=True)
    thread.start()
    return thread
