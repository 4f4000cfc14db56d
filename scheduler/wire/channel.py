"""The authenticated control channel between the driver and its executors.

State: one ``Connection`` per executor, a framed byte stream over TCP (TLS when the peer is
not on loopback) or an in-process queue pair for the inline backend.

Policy and promises (docs/architecture.md, Invariants, 7. Authenticated control channel):
- Before any payload is exchanged, both sides prove knowledge of the per-job secret by a
  mutual HMAC-SHA256 challenge.  Nothing is unpickled before that succeeds.  Over TLS the
  challenge also covers the fingerprint of the driver's certificate as each side sees it,
  so the unverified, self-signed certificate cannot be swapped by a peer in the middle
  (``scheduler.wire.tls``).
- Every frame carries an 8-byte length and is refused when it exceeds ``max_message``.
- Messages are pickled frozen dataclasses (``scheduler.wire.messages``); ``send`` is thread-safe so
  an executor's heartbeat thread can share the socket with its task thread.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import queue
import socket
import ssl
import struct
import threading
from typing import Any, Protocol

from scheduler.wire.tls import TLSSocket, client_context, fingerprint

DEFAULT_MAX_MESSAGE = 1 << 30
_HEADER = struct.Struct("!Q")
_NONCE = 32


class ChannelClosed(ConnectionError):
    """The peer went away; for the driver this means the executor is lost."""


class AuthenticationFailed(ConnectionError):
    """The peer does not know the job secret; nothing it sent was unpickled."""


class Connection(Protocol):
    def send(self, message: Any) -> None: ...
    def recv(self, timeout: float | None = None) -> Any: ...
    def close(self) -> None: ...


class SocketConnection:
    """A framed, size-limited, authenticated message stream over a socket."""

    def __init__(self, sock: Any, max_message: int = DEFAULT_MAX_MESSAGE):  # a socket or a tls.TLSSocket
        self._sock = sock
        self._max = max_message
        self._send_lock = threading.Lock()
        self._closed = False

    def send_bytes(self, data: bytes) -> None:
        if len(data) > self._max:
            raise ValueError(f"message of {len(data)} bytes exceeds the channel limit of {self._max} bytes")
        with self._send_lock:
            try:
                self._sock.sendall(_HEADER.pack(len(data)) + data if len(data) < 65536 else _HEADER.pack(len(data)))
                if len(data) >= 65536:
                    self._sock.sendall(data)
            except OSError as exc:
                raise ChannelClosed(f"control channel closed while sending: {exc}") from exc

    def recv_bytes(self, timeout: float | None = None) -> bytes:
        self._sock.settimeout(timeout)
        try:
            (length,) = _HEADER.unpack(self._recv_exact(_HEADER.size))
            if length > self._max:
                raise ChannelClosed(f"peer sent a {length}-byte message, over the {self._max}-byte limit")
            self._sock.settimeout(None)
            return self._recv_exact(length)
        except socket.timeout:
            raise TimeoutError("no message before the timeout") from None

    def send(self, message: Any) -> None:
        self.send_bytes(pickle.dumps(message, protocol=5))

    def recv(self, timeout: float | None = None) -> Any:
        return pickle.loads(self.recv_bytes(timeout))

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            try:
                k = self._sock.recv_into(view[got:], n - got)
            except socket.timeout:
                raise
            except OSError as exc:
                raise ChannelClosed(f"control channel closed while receiving: {exc}") from exc
            if k == 0:
                raise ChannelClosed("control channel closed by the peer")
            got += k
        return bytes(buf)


class QueueConnection:
    """One end of an in-process channel, for the inline backend (no pickling needed)."""

    def __init__(self, inbox: "queue.Queue[Any]", outbox: "queue.Queue[Any]"):
        self._inbox, self._outbox = inbox, outbox
        self._closed = False

    @classmethod
    def pair(cls) -> tuple["QueueConnection", "QueueConnection"]:
        a: queue.Queue[Any] = queue.Queue()
        b: queue.Queue[Any] = queue.Queue()
        return cls(a, b), cls(b, a)

    def send(self, message: Any) -> None:
        if self._closed:
            raise ChannelClosed("in-process channel is closed")
        self._outbox.put(message)

    def recv(self, timeout: float | None = None) -> Any:
        try:
            message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no message before the timeout") from None
        if message is _CLOSE:
            self._closed = True
            raise ChannelClosed("in-process channel closed by the peer")
        return message

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._outbox.put(_CLOSE)


_CLOSE = object()


def _mac(secret: bytes, nonce: bytes, role: bytes, binding: bytes = b"") -> bytes:
    return hmac.new(secret, role + nonce + binding, hashlib.sha256).digest()


def server_handshake(sock: Any, secret: bytes, timeout: float = 10.0, *,
                     tls: ssl.SSLContext | None = None, certificate: bytes = b"") -> SocketConnection:
    """Authenticate an accepted socket; raise AuthenticationFailed without unpickling anything.

    With ``tls`` (a server context holding ``certificate``, DER) the socket is wrapped first
    and the certificate's fingerprint is bound into the challenge.
    """
    sock.settimeout(timeout)
    binding = b""
    if tls is not None:
        try:
            sock = TLSSocket(sock, tls, server_side=True, timeout=timeout)
        except (OSError, ConnectionError) as exc:
            raise AuthenticationFailed(f"TLS handshake did not complete: {exc}") from exc
        binding = fingerprint(certificate)
    conn = SocketConnection(sock, max_message=256)
    try:
        server_nonce = os.urandom(_NONCE)
        conn.send_bytes(server_nonce)
        reply = conn.recv_bytes(timeout)
        if len(reply) != 32 + _NONCE or not hmac.compare_digest(
                reply[:32], _mac(secret, server_nonce, b"executor", binding)):
            raise AuthenticationFailed("an executor failed the job-secret challenge; connection dropped")
        conn.send_bytes(_mac(secret, reply[32:], b"driver", binding))
    except (TimeoutError, ChannelClosed) as exc:
        raise AuthenticationFailed(f"handshake did not complete: {exc}") from exc
    sock.settimeout(None)
    return SocketConnection(sock)


def connect(address: tuple[str, int], secret: bytes, *, tls: bool | None = None, timeout: float = 30.0) -> SocketConnection:
    """Open an authenticated connection to the driver at ``address``.

    TLS is used when the driver is not on loopback (``tls=None``), or as ``tls`` says.  The
    driver's identity is proven by the mutual HMAC over its certificate's fingerprint rather
    than by a certificate chain, since it presents a self-signed one.
    """
    host, port = address
    sock: Any = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    binding = b""
    if tls if tls is not None else not is_loopback(host):
        sock = TLSSocket(sock, client_context(), server_side=False, timeout=timeout)
        binding = fingerprint(sock.peer_certificate())
    conn = SocketConnection(sock, max_message=256)
    server_nonce = conn.recv_bytes(timeout)
    my_nonce = os.urandom(_NONCE)
    conn.send_bytes(_mac(secret, server_nonce, b"executor", binding) + my_nonce)
    proof = conn.recv_bytes(timeout)
    if not hmac.compare_digest(proof, _mac(secret, my_nonce, b"driver", binding)):
        sock.close()
        raise AuthenticationFailed("the driver failed the job-secret challenge; is the address right?")
    sock.settimeout(None)
    return SocketConnection(sock)


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
