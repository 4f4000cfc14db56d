"""The driver's end of one control connection, stepped by the server's single I/O thread.

State: a non-blocking socket, an ``ssl.SSLObject`` over two memory BIOs when the channel is
encrypted, the handshake step (``tls`` -> ``challenge`` -> ``register`` -> ``open``), the
bytes received and not yet framed, and the bytes waiting for the socket.

Policy:
- Nothing here blocks or sleeps: ``receive`` reads what one readiness event offers,
  ``send`` and ``flush`` write what the socket takes at once and keep the rest.
- ``send`` (the driver's loop) writes through when nothing is waiting, which is the common
  case and costs no hand-off to another thread; only what the socket does not take is left
  for the I/O thread, which is then woken to write it as the socket drains.  One lock
  orders every write and every use of the TLS object, so OpenSSL is never entered by two
  threads at once.
- The waiting bytes are bounded by ``queue_limit``: a send beyond it drops the peer at once
  (``ChannelClosed``), and the server drops a peer whose output makes no progress for its
  ``send_timeout``; so a stuck executor costs its own queue, never the driver's time.
- Frame limits follow the step: ``HANDSHAKE_MESSAGE`` before authentication,
  ``REGISTER_MESSAGE`` for the ``Register`` that must come first, ``max_message`` after.
  The receive buffer grows with the bytes that arrive, never to the size a header claims.

Promise: ``Peer`` offers the driver what ``SocketConnection`` did (``send``, ``close``,
``closed``); what the peer sends comes back from ``receive`` as unpickled messages, and
nothing is unpickled before it has passed the job-secret challenge.
"""

from __future__ import annotations

import hmac
import os
import pickle
import ssl
import threading
import time
from collections import deque
from typing import Any, Callable

from scheduler.wire.channel import (
    _HEADER, DEFAULT_MAX_MESSAGE, HANDSHAKE_MESSAGE, NONCE_BYTES, RECV_CHUNK, ChannelClosed, mac,
)
from scheduler.wire.messages import Register
from scheduler.wire.tls import fingerprint

REGISTER_MESSAGE = 64 << 10
_TLS_WRITE = 1 << 20


class Drop(Exception):
    """The peer broke the protocol, failed authentication or went away; the reason says which."""


class Peer:
    def __init__(self, sock: Any, address: Any, secret: bytes, wake: Callable[["Peer"], None], *,
                 tls: ssl.SSLContext | None = None, certificate: bytes = b"",
                 max_message: int = DEFAULT_MAX_MESSAGE, queue_limit: int = 256 << 20):
        self.sock = sock
        self.address = address
        self.executor_id: str | None = None
        self.step = "tls" if tls is not None else "challenge"
        self.accepted = self.last_progress = time.monotonic()
        self.close_requested: float | None = None  # monotonic time of close(), then flushed and ended
        self.drop_reason: str | None = None  # set by a send over the queue limit
        self.dead = False
        self._secret, self._wake = secret, wake
        self._max, self._queue_limit = max_message, queue_limit
        self._binding = fingerprint(certificate) if tls is not None else b""
        self._tls: ssl.SSLObject | None = None
        if tls is not None:
            self._bio_in, self._bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self._tls = tls.wrap_bio(self._bio_in, self._bio_out, server_side=True)
        self._inbuf = bytearray()
        self._raw: deque[memoryview] = deque()  # bytes for the socket, in order
        self._lock = threading.RLock()  # the output queue, the socket's writes and the TLS object
        self.backlog = 0  # bytes accepted for sending and not yet taken by the socket
        self._nonce = os.urandom(NONCE_BYTES)
        if self._tls is None:
            self._emit(self._nonce)

    # ---- the driver's side (any thread) -------------------------------------------------------

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=5)
        if len(data) > self._max:
            raise ValueError(f"message of {len(data)} bytes exceeds the channel limit of {self._max} bytes")
        raise_it: ChannelClosed | None = None
        with self._lock:
            if self.dead or self.close_requested is not None or self.drop_reason is not None:
                raise ChannelClosed(f"control channel to {self.executor_id} is closed")
            if self.backlog and self.backlog + len(data) > self._queue_limit:
                self.drop_reason = (f"executor {self.executor_id} has {self.backlog} bytes it has not read, "
                                    f"over the {self._queue_limit}-byte send queue")
                raise_it = ChannelClosed(self.drop_reason)
                waiting = True
            else:
                self._push(_HEADER.pack(len(data)), data)
                try:
                    waiting = self._write_some()
                except Drop as exc:
                    self.drop_reason = str(exc)
                    raise_it = ChannelClosed(f"control channel to {self.executor_id}: {exc}")
                    waiting = True
        if waiting:
            self._wake(self)
        if raise_it is not None:
            raise raise_it

    def close(self) -> None:
        with self._lock:
            if self.close_requested is None:
                self.close_requested = time.monotonic()
        self._wake(self)

    @property
    def closed(self) -> bool:
        return self.dead or self.close_requested is not None

    # ---- the I/O thread's side ----------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        return self.step in ("register", "open")

    def receive(self) -> list[Any]:
        """Read once from the socket; return the messages that completed (raise ``Drop``)."""
        try:
            raw = self.sock.recv(RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            raise Drop(f"receive failed: {exc}") from exc
        if not raw:
            raise Drop("closed by the peer")
        if self._tls is None:
            self._inbuf += raw
        else:
            with self._lock:
                self._bio_in.write(raw)
                self._tls_receive()
        return self._frames_in()

    def _tls_receive(self) -> None:
        assert self._tls is not None
        try:
            if self.step == "tls":
                try:
                    self._tls.do_handshake()
                except ssl.SSLWantReadError:
                    return
                finally:
                    self._take_tls_output()
                self.step = "challenge"
                self._emit(self._nonce)
            while True:
                try:
                    data = self._tls.read(RECV_CHUNK)
                except ssl.SSLWantReadError:
                    return
                if not data:
                    raise Drop("closed by the peer")
                self._inbuf += data
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as exc:
            raise Drop("closed by the peer") from exc
        except ssl.SSLError as exc:
            raise Drop(f"TLS {'handshake did not complete' if self.step == 'tls' else 'failed'}: {exc}") from exc
        finally:
            self._take_tls_output()

    def _frames_in(self) -> list[Any]:
        out: list[Any] = []
        while len(self._inbuf) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._inbuf)
            limit = {"challenge": HANDSHAKE_MESSAGE, "register": REGISTER_MESSAGE}.get(self.step, self._max)
            if length > limit:
                raise Drop(f"peer sent a {length}-byte message, over the {limit}-byte limit"
                           f"{'' if self.step == 'open' else ' before registering'}")
            end = _HEADER.size + length
            if len(self._inbuf) < end:
                break
            with memoryview(self._inbuf) as view:
                frame = view[_HEADER.size:end].tobytes()  # one copy, even of a large result
            del self._inbuf[:end]
            message = self._on_frame(frame)
            if message is not None:
                out.append(message)
        return out

    def _on_frame(self, frame: bytes) -> Any:
        if self.step == "challenge":
            expected = mac(self._secret, b"executor", self._nonce, self._binding)
            if len(frame) != 32 + NONCE_BYTES or not hmac.compare_digest(frame[:32], expected):
                raise Drop("an executor failed the job-secret challenge")
            self._emit(mac(self._secret, b"driver", frame[32:], self._binding))
            self.step = "register"
            return None
        try:
            message = pickle.loads(frame)
        except Exception as exc:  # noqa: BLE001 - an undecodable message loses the executor
            raise Drop(f"an unreadable message: {exc!r}") from exc
        if self.step == "register":
            if not isinstance(message, Register):
                raise Drop(f"the first message was a {type(message).__name__}, not Register")
            self.executor_id = message.executor_id
            self.step = "open"
        return message

    def _emit(self, data: bytes) -> None:
        """Queue a handshake frame from the I/O thread (the driver cannot send yet)."""
        with self._lock:
            self._push(_HEADER.pack(len(data)), data)

    def _push(self, *parts: bytes) -> None:
        """Queue ``parts`` for the socket, encrypted when TLS is on (the caller holds the lock)."""
        if not self._raw:
            self.last_progress = time.monotonic()  # the stall clock starts when output is waiting
        if self._tls is None:
            for part in parts:
                self._raw.append(memoryview(part))
                self.backlog += len(part)
            return
        for part in parts:
            view = memoryview(part)
            while view:
                view = view[self._tls.write(view[:_TLS_WRITE]):]
        self._take_tls_output()

    def _take_tls_output(self) -> None:
        with self._lock:
            data = self._bio_out.read()
            if data:
                self._raw.append(memoryview(data))
                self.backlog += len(data)

    def flush(self) -> bool:
        """Write what the socket takes; return whether output is still waiting (raise ``Drop``)."""
        with self._lock:
            return self._write_some()

    def _write_some(self) -> bool:
        while self._raw:
            head = self._raw[0]
            try:
                n = self.sock.send(head)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:
                raise Drop(f"send failed: {exc}") from exc
            self.backlog -= n
            self.last_progress = time.monotonic()
            if n == len(head):
                self._raw.popleft()
            else:
                self._raw[0] = head[n:]
        return False

    def stalled(self, now: float, timeout: float) -> bool:
        return bool(self._raw) and now - self.last_progress > timeout
