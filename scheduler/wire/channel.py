"""The authenticated control channel between the driver and its executors: the executor's end.

State: one ``Connection`` per executor, a framed byte stream over TCP (TLS when the peer is
not on loopback) or an in-process queue pair for the inline backend.  The driver's end of a
socket is ``scheduler.server`` (one I/O thread for every connection); this module holds what
both ends share: the framing, the limits and the MAC.

Policy and promises (docs/architecture.md, Invariants, 7. Authenticated control channel):
- Before any payload is exchanged, both sides prove knowledge of the per-job secret by a
  mutual HMAC-SHA256 challenge over nonces of exactly ``NONCE_BYTES``.  The MAC input is a
  sequence of length-prefixed fields (context, role, nonce, binding), so no two different
  field splits can share an input.  Nothing is unpickled before that succeeds.  Over TLS the
  challenge also covers the fingerprint of the driver's certificate as each side sees it,
  so the unverified, self-signed certificate cannot be swapped by a peer in the middle
  (``scheduler.wire.tls``).
- Every frame carries an 8-byte length and is refused when it exceeds the limit in force
  (``HANDSHAKE_MESSAGE`` until authenticated, then ``max_message``).  Receive buffers grow
  as bytes arrive, never to the size a header claims.
- Messages are pickled frozen dataclasses (``scheduler.wire.messages``); ``send`` is thread-safe so
  an executor's heartbeat thread can share the socket with its task thread.
- ``is_loopback`` parses addresses; names are resolved only when asked.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import pickle
import queue
import random
import socket
import struct
import threading
import time
from typing import Any, Protocol

from scheduler.wire.tls import TLSSocket, client_context, fingerprint

DEFAULT_MAX_MESSAGE = 1 << 30
HANDSHAKE_MESSAGE = 256  # the limit on every frame before both sides are authenticated
RECV_CHUNK = 1 << 20  # receive buffers grow by at most this much per read
NONCE_BYTES = 32
_HEADER = struct.Struct("!Q")
_FIELD = struct.Struct("!I")
_MAC_CONTEXT = b"dagrun-control-v2"


class ChannelClosed(ConnectionError):
    """The peer went away; for the driver this means the executor is lost."""


class AuthenticationFailed(ConnectionError):
    """The peer does not know the job secret; nothing it sent was unpickled."""


class Connection(Protocol):
    def send(self, message: Any) -> None: ...
    def recv(self, timeout: float | None = None) -> Any: ...
    def close(self) -> None: ...


class SocketConnection:
    """A framed, size-limited, authenticated message stream over a blocking socket (the executor's end)."""

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
        # grown as bytes arrive: a length header alone never makes us allocate what it claims
        buf = bytearray()
        chunk = bytearray(min(n, RECV_CHUNK))
        view = memoryview(chunk)
        while len(buf) < n:
            want = min(n - len(buf), RECV_CHUNK)
            try:
                k = self._sock.recv_into(view[:want], want)
            except socket.timeout:
                raise
            except OSError as exc:
                raise ChannelClosed(f"control channel closed while receiving: {exc}") from exc
            if k == 0:
                raise ChannelClosed("control channel closed by the peer")
            buf += view[:k]
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


def mac(secret: bytes, role: bytes, nonce: bytes, binding: bytes = b"") -> bytes:
    """HMAC over length-prefixed fields, so no two (role, nonce, binding) triples share an input."""
    fields = (_MAC_CONTEXT, role, nonce, binding)
    return hmac.new(secret, b"".join(_FIELD.pack(len(f)) + f for f in fields), hashlib.sha256).digest()


def connect(address: tuple[str, int], secret: bytes, *, tls: bool | None = None, timeout: float = 30.0) -> SocketConnection:
    """Open an authenticated connection to the driver at ``address``.

    TLS is used when the driver is not on loopback (``tls=None``), or as ``tls`` says.  The
    driver's identity is proven by the mutual HMAC over its certificate's fingerprint rather
    than by a certificate chain, since it presents a self-signed one.  A driver at its cap of
    connections still authenticating answers with an empty frame (over TLS: closes before
    the TLS handshake); that is retried with jittered back-off until ``timeout``.  A refused
    connection is not retried (the driver has finished).
    """
    give_up = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return _connect_once(address, secret, tls, max(0.1, give_up - time.monotonic()))
        except _Busy as exc:
            if time.monotonic() + delay >= give_up:
                raise ChannelClosed(f"the driver at {address[0]}:{address[1]} kept refusing new connections "
                                    f"for {timeout:g}s ({exc}); it is overloaded or shutting down") from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(1.0, delay * 2)


class _Busy(ConnectionError):
    """The driver's cap on unauthenticated connections turned this one away."""


def _connect_once(address: tuple[str, int], secret: bytes, tls: bool | None, timeout: float) -> SocketConnection:
    host, port = address
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client_handshake(sock, secret, tls=tls if tls is not None else not is_loopback(host), timeout=timeout)


def client_handshake(sock: socket.socket, secret: bytes, *, tls: bool, timeout: float = 30.0) -> SocketConnection:
    """Authenticate a connected socket to the driver (closing it on failure)."""
    conn_sock: Any = sock
    try:
        conn_sock.settimeout(timeout)
        binding = b""
        if tls:
            try:
                conn_sock = TLSSocket(sock, client_context(), server_side=False, timeout=timeout)
            except ConnectionError as exc:
                raise _Busy(str(exc)) from exc
            binding = fingerprint(conn_sock.peer_certificate())
        conn = SocketConnection(conn_sock, max_message=HANDSHAKE_MESSAGE)
        server_nonce = conn.recv_bytes(timeout)
        if not server_nonce:
            raise _Busy("the driver is at its cap of connections still authenticating")
        if len(server_nonce) != NONCE_BYTES:
            raise AuthenticationFailed(f"the driver sent a {len(server_nonce)}-byte challenge, not {NONCE_BYTES} "
                                       "bytes; is the address right?")
        my_nonce = os.urandom(NONCE_BYTES)
        conn.send_bytes(mac(secret, b"executor", server_nonce, binding) + my_nonce)
        proof = conn.recv_bytes(timeout)
        if not hmac.compare_digest(proof, mac(secret, b"driver", my_nonce, binding)):
            raise AuthenticationFailed("the driver failed the job-secret challenge; is the address right?")
    except BaseException:
        sock.close()
        raise
    conn_sock.settimeout(None)
    return SocketConnection(conn_sock)


def is_loopback(host: str, *, resolve: bool = False) -> bool:
    """Whether ``host`` is a loopback address, by parsing it (``127.example.com`` is a name, not one).

    ``localhost`` counts (RFC 6761 reserves it); other names count only with ``resolve=True``
    and only when every address they resolve to is loopback.
    """
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _parse_address(name)
    if address is not None:
        return address.is_loopback
    if not resolve or not name:
        return False
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    parsed = [_parse_address(str(info[4][0]).split("%")[0]) for info in infos]
    return bool(parsed) and all(a is not None and a.is_loopback for a in parsed)


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
