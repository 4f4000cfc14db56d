"""The driver's side of the control channel: a listening socket and one reader per executor.

State: the listening socket, the TLS context and certificate when the channel is encrypted,
and every connection accepted so far (so ``close`` can end them).

Policy: TLS is on when the bind address is not loopback (``tls=None``), or as ``tls`` says;
loopback stays plain TCP.  Every accepted connection must pass the job-secret handshake
(``channel.server_handshake``) and then introduce itself with ``Register``; only then is it
attached.  Each reader thread turns what arrives into tuples on the driver's event queue:
``("msg", executor_id, message)`` and, when the stream ends, ``("closed", executor_id)``.

Promise: after ``close`` no executor can connect, and every executor still connected sees
its channel close (so an executor whose retirement never reached it still exits).
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable

from scheduler.wire.channel import AuthenticationFailed, ChannelClosed, Connection, SocketConnection, is_loopback, server_handshake
from scheduler.wire.messages import Register

log = logging.getLogger("dagrun.scheduler")


class ControlServer:
    def __init__(self, host: str, secret: bytes, post: Callable[[tuple], None], tls: bool | None = None):
        self._secret = secret
        self._post = post
        self.tls = (not is_loopback(host)) if tls is None else tls
        self._tls_context, self._certificate = None, b""
        if self.tls:
            from scheduler.wire.tls import server_context

            self._tls_context, self._certificate = server_context()
        self._sock = socket.create_server((host, 0), backlog=1024)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._closed = False
        self._lock = threading.Lock()
        self._conns: list[SocketConnection] = []
        threading.Thread(target=self._accept_loop, name="dagrun-accept", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), name="dagrun-handshake", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = server_handshake(sock, self._secret, tls=self._tls_context, certificate=self._certificate)
            first = conn.recv(timeout=30)
        except (AuthenticationFailed, ChannelClosed, TimeoutError, OSError) as exc:
            log.warning("dropped a control connection: %s", exc)
            sock.close()
            return
        if not isinstance(first, Register):
            log.warning("dropped a control connection that did not register first")
            conn.close()
            return
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._conns = [c for c in self._conns if not c.closed]
            self._conns.append(conn)
        attach(conn, first.executor_id, self._post, first)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        self._sock.close()
        for conn in conns:
            conn.close()


def attach(conn: Connection, executor_id: str, post: Callable[[tuple], None], first=None) -> None:
    """Hand ``conn`` to the driver and forward everything it receives, on a reader thread."""
    post(("conn", executor_id, conn))

    def read() -> None:
        if first is not None:
            post(("msg", executor_id, first))
        while True:
            try:
                message = conn.recv()
            except (ChannelClosed, OSError, EOFError):
                post(("closed", executor_id))
                return
            except Exception as exc:  # noqa: BLE001 - an undecodable message loses the executor
                log.warning("executor %s sent an unreadable message: %r", executor_id, exc)
                conn.close()
                post(("closed", executor_id))
                return
            post(("msg", executor_id, message))

    threading.Thread(target=read, name=f"dagrun-reader-{executor_id}", daemon=True).start()
