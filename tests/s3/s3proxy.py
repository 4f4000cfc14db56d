"""A counting HTTP proxy in front of the moto server: what S3 really received, by kind.

State: one ``ThreadingHTTPServer`` on 127.0.0.1 forwarding every request to ``upstream``
(a ThreadedMotoServer), the log of every request it saw (``requests``), an optional
queue of injected replies, an optional added latency for object GETs, and the largest
number of requests it has had in flight at once (``max_in_flight``).

Policy: requests are classified in S3 billing units, the same units ``BlockStore`` counts:
HEAD = HEAD; GET with ``list-type`` (or on a bare bucket) = LIST; any other GET = GET;
PUT, and POST to initiate or complete a multipart upload, = PUT; DELETE and
``POST ?delete`` (DeleteObjects) = DELETE.  ``inject_status(n, 503, "SlowDown")`` makes
the next ``n`` matching requests fail at the proxy without reaching moto, exactly as S3
answers when it throttles, so retry paths see the real botocore/s3fs error.

Promise: every request is logged with its wall-clock time, bucket, key, kind and status,
whether forwarded or answered by an injection.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-connection", "content-length"}


@dataclass(frozen=True)
class SeenRequest:
    time: float
    method: str
    bucket: str
    key: str
    query: str
    kind: str  # GET | PUT | LIST | DELETE | HEAD | OTHER
    status: int
    bytes_in: int  # request body (to the store)
    bytes_out: int  # response body (from the store)


def classify(method: str, key: str, query: dict[str, list[str]]) -> str:
    if method == "HEAD":
        return "HEAD"
    if method == "GET":
        if "list-type" in query or (not key and not query):
            return "LIST"
        return "GET" if key else "OTHER"  # GetBucketLocation and friends are not data requests
    if method == "PUT":
        return "PUT"
    if method == "POST":
        if "delete" in query:
            return "DELETE"
        if "uploads" in query or "uploadId" in query:
            return "PUT"
        return "OTHER"
    if method == "DELETE":
        return "DELETE"
    return "OTHER"


class CountingProxy:
    """``with CountingProxy("http://127.0.0.1:5000") as proxy: ... proxy.url ...``"""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._injections: list[tuple[int, str, Callable[[str, str, str], bool]]] = []
        self.latency = 0.0  # seconds added to every forwarded GET of an object (to see concurrency)
        self.in_flight = 0
        self.max_in_flight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-counting-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "CountingProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "CountingProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the log -------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._injections.clear()
            self.latency, self.max_in_flight = 0.0, 0

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def seen(self, bucket: str | None = None, since: float = 0.0, until: float = float("inf")) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests
                    if (bucket is None or r.bucket == bucket) and since <= r.time <= until]

    def counts(self, bucket: str | None = None, since: float = 0.0, until: float = float("inf")) -> Counter:
        """Requests by kind (``get``, ``put``, ... as ``RequestCounts`` names them) and bytes."""
        out: Counter = Counter()
        for r in self.seen(bucket, since, until):
            if r.kind != "OTHER":
                out[r.kind.lower()] += 1
            out["bytes_in"] += r.bytes_out if r.kind == "GET" and r.status < 300 else 0
            out["bytes_out"] += r.bytes_in if r.method == "PUT" else 0  # sent, even if refused
        return +out

    def inject_status(self, count: int, status: int = 503, code: str = "SlowDown",
                      match: Callable[[str, str, str], bool] = lambda method, bucket, key: True) -> None:
        """Answer the next ``count`` requests for which ``match(method, bucket, key)`` holds
        with ``status`` and the S3 error ``code``, without forwarding them."""
        with self._lock:
            self._injections.append((count, f"{status} {code}", match))

    def _take_injection(self, method: str, bucket: str, key: str) -> str | None:
        with self._lock:
            for i, (left, reply, match) in enumerate(self._injections):
                if left > 0 and match(method, bucket, key):
                    self._injections[i] = (left - 1, reply, match)
                    return reply
        return None

    def _log(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_for(proxy: CountingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects
        _conn: http.client.HTTPConnection | None = None

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _upstream(self, method: str, body: bytes) -> http.client.HTTPResponse:
            for retry in (False, True):
                if self._conn is None or retry:
                    self._conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    self._conn.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP:
                            self._conn.putheader(name, value)
                    self._conn.putheader("Content-Length", str(len(body)))
                    self._conn.endheaders(body)
                    return self._conn.getresponse()
                except (ConnectionError, http.client.HTTPException):
                    if retry:  # a stale keep-alive connection gets one fresh try
                        raise
            raise AssertionError("unreachable")

        def _forward(self) -> None:
            method = self.command
            parts = urlsplit(self.path)
            path = unquote(parts.path).lstrip("/")
            bucket, _, key = path.partition("/")
            query = parse_qs(parts.query, keep_blank_values=True)
            body = self._read_body()
            now = time.time()
            reply = proxy._take_injection(method, bucket, key)
            if reply is not None:
                status, _, code = reply.partition(" ")
                payload = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                           f"<Message>Please reduce your request rate.</Message>"
                           f"<RequestId>injected</RequestId></Error>").encode()
                # logged before the reply is sent, so a client that has its answer finds it in the log
                proxy._log(SeenRequest(now, method, bucket, key, parts.query, classify(method, key, query),
                                       int(status), len(body), 0))
                self.send_response_only(int(status))
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(0 if method == "HEAD" else len(payload)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(payload)
                return
            proxy._enter()
            try:
                if proxy.latency and method == "GET" and key:
                    time.sleep(proxy.latency)
                resp = self._upstream(method, body)
                data = resp.read()
            finally:
                proxy._leave()
            proxy._log(SeenRequest(now, method, bucket, key, parts.query, classify(method, key, query),
                                   resp.status, len(body), len(data)))
            self.send_response_only(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            length = resp.getheader("Content-Length") if method == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 - stdlib's names

    return Handler
