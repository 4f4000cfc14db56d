"""The driver's side of the control channel: one I/O thread for the listening socket and every executor.

State: the listening socket, the TLS context and certificate when the channel is encrypted,
a selector, every connection (``scheduler.wire.peer.Peer``) in it, the ones still in their
handshake (in accept order, so the oldest deadline is first), and a wake-up socket pair
through which other threads hand over sends and closes.

Policy:
- TLS is on when the bind address is not loopback (``tls=None``), or as ``tls`` says.
- Every accepted connection must pass the job-secret challenge and introduce itself with
  ``Register`` within ``handshake_timeout`` seconds of its accept (TLS included), or it is
  dropped.  At most ``max_pending`` connections may be unauthenticated at once; beyond
  that a new connection is answered "busy" (an empty frame; over TLS, no handshake) and
  closed at once, and the executor's ``connect`` retries with back-off.
- ``accept`` errors never end accepting: a connection aborted before it was accepted is
  skipped; running out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is logged
  with what to raise, and accepting pauses with exponential back-off (at most 1 s) so the
  loop does not spin on a backlog it cannot take.
- Sends from the driver's loop only enqueue (``Peer.send``); this thread writes them as
  each socket takes them.  A connection whose output makes no progress for
  ``send_timeout`` seconds is dropped, so one stuck executor never holds up the others.
- What arrives is posted on the driver's event queue: ``("conn", executor_id, conn)`` and
  ``("msg", executor_id, Register)`` once registered, then ``("msg", executor_id, message)``,
  and ``("closed", executor_id)`` once when the connection ends for any reason.

Promise: after ``close`` no executor can connect, and every executor still connected sees
its channel close after what was already sent to it (given a second to drain), so an
executor whose retirement never reached it still exits.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
import time
from typing import Any, Callable

from scheduler.wire.channel import _HEADER, DEFAULT_MAX_MESSAGE, ChannelClosed, Connection, is_loopback
from scheduler.wire.peer import Drop, Peer

log = logging.getLogger("dagrun.scheduler")

_LISTEN, _WAKE = object(), object()
_SKIP_ACCEPT = {errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN, errno.ENETDOWN, errno.ENOPROTOOPT,
                errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH,
                errno.EPERM, errno.ECONNRESET}
_CLOSE_GRACE = 1.0  # how long a closing connection may take to drain what was sent before it
_ACCEPT_BURST = 64  # accepts per readiness event, so handshakes in progress keep moving
_ACCEPT_BACKOFF = 0.05  # the first pause after an accept error; it doubles up to 1 s


class ControlServer:
    def __init__(self, host: str, secret: bytes, post: Callable[[tuple], None], tls: bool | None = None, *,
                 handshake_timeout: float = 10.0, max_pending: int = 256, send_timeout: float = 30.0,
                 queue_limit: int = 256 << 20, max_message: int = DEFAULT_MAX_MESSAGE):
        if handshake_timeout <= 0 or send_timeout <= 0 or max_pending < 1:
            raise ValueError("handshake_timeout and send_timeout must be above 0 and max_pending at least 1")
        self._secret, self._post = secret, post
        self.handshake_timeout, self.max_pending, self.send_timeout = handshake_timeout, max_pending, send_timeout
        self._queue_limit, self._max_message = queue_limit, max_message
        self.tls = (not is_loopback(host)) if tls is None else tls
        self._tls_context, self._certificate = None, b""
        if self.tls:
            from scheduler.wire.tls import server_context

            self._tls_context, self._certificate = server_context()
        self._sock = socket.create_server((host, 0), backlog=1024)
        self._sock.setblocking(False)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ, _LISTEN)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._peers: dict[Peer, int] = {}  # peer -> the selector events it is registered for
        self._handshaking: dict[Peer, None] = {}  # in accept order
        self._unauthenticated = 0
        self._writing: set[Peer] = set()
        self._lock = threading.Lock()
        self._dirty: set[Peer] = set()
        self._woken = False
        self._closed = False
        self._accept_backoff, self._accept_resume = _ACCEPT_BACKOFF, None
        self._refused_logged = 0.0
        self._checked = 0.0
        self._thread = threading.Thread(target=self._run, name="dagrun-control-io", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake(None)
        self._thread.join(timeout=_CLOSE_GRACE + 5)

    # ---- the I/O thread ------------------------------------------------------------------------

    def _run(self) -> None:
        closing_since: float | None = None
        try:
            while True:
                busy = self._handshaking or self._writing or self._accept_resume is not None or closing_since
                for key, mask in self._selector.select(0.05 if busy else 1.0):
                    if key.data is _LISTEN:
                        self._accept()
                    elif key.data is _WAKE:
                        self._drain_wake()
                    else:
                        self._ready(key.data, mask)
                self._serve_requests()
                now = time.monotonic()
                self._expire(now)
                if self._closed and closing_since is None:
                    closing_since = now
                    self._stop_listening()
                    for peer in list(self._peers):
                        if peer.authenticated:
                            peer.close()
                        else:
                            self._drop(peer, "the driver is closing")
                    self._serve_requests()
                if closing_since is not None and (not self._peers or now - closing_since > _CLOSE_GRACE):
                    for peer in list(self._peers):
                        self._drop(peer, "the driver closed", quiet=True)
                    return
        except Exception:  # noqa: BLE001 - a bug here must not leave executors connected to nothing
            log.exception("control channel I/O thread failed; dropping every connection")
            for peer in list(self._peers):
                self._drop(peer, "the driver's control channel failed", quiet=True)
        finally:
            self._stop_listening()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BURST):
            try:
                sock, address = self._accept_one()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _SKIP_ACCEPT:
                    continue
                if self._closed:
                    return
                hint = (" raise the open-file limit (ulimit -n) or run fewer executors;"
                        if exc.errno in (errno.EMFILE, errno.ENFILE) else "")
                first = self._accept_backoff == _ACCEPT_BACKOFF  # once per episode, not once a second
                (log.warning if first else log.debug)("cannot accept a control connection: %s;%s retrying "
                                                      "in %.2fs", exc, hint, self._accept_backoff)
                self._selector.unregister(self._sock)
                self._accept_resume = time.monotonic() + self._accept_backoff
                self._accept_backoff = min(1.0, self._accept_backoff * 2)
                return
            self._accept_backoff = _ACCEPT_BACKOFF
            if self._unauthenticated >= self.max_pending:
                if self._tls_context is None:
                    try:
                        sock.send(_HEADER.pack(0))  # "busy": an empty challenge, so the executor retries
                    except OSError:
                        pass
                sock.close()
                now = time.monotonic()
                if now - self._refused_logged > 5:
                    self._refused_logged = now
                    log.warning("refused a control connection from %s: %d connections are still "
                                "authenticating (the cap)", address, self._unauthenticated)
                continue
            self._admit(sock, address)

    def _accept_one(self) -> tuple[socket.socket, Any]:
        return self._sock.accept()

    def _admit(self, sock: socket.socket, address: Any) -> None:
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            return
        peer = Peer(sock, address, self._secret, self._wake, tls=self._tls_context, certificate=self._certificate,
                    max_message=self._max_message, queue_limit=self._queue_limit)
        self._peers[peer] = selectors.EVENT_READ
        self._selector.register(sock, selectors.EVENT_READ, peer)
        self._handshaking[peer] = None
        self._unauthenticated += 1
        self._write(peer)

    def _ready(self, peer: Peer, mask: int) -> None:
        if peer.dead:
            return
        if mask & selectors.EVENT_READ:
            was_authenticated = peer.authenticated
            try:
                messages = peer.receive()
            except Drop as exc:
                self._drop(peer, str(exc))
                return
            if peer.authenticated and not was_authenticated:
                self._unauthenticated -= 1
            for message in messages:
                if peer.executor_id is not None and peer in self._handshaking:
                    del self._handshaking[peer]
                    if self._closed:
                        self._drop(peer, "the driver is closing")
                        return
                    self._post(("conn", peer.executor_id, peer))
                self._post(("msg", peer.executor_id, message))
        if not peer.dead:
            self._write(peer)

    def _write(self, peer: Peer) -> None:
        try:
            waiting = peer.flush()
        except Drop as exc:
            self._drop(peer, str(exc))
            return
        if waiting:
            self._writing.add(peer)
        else:
            self._writing.discard(peer)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if waiting else 0)
        if self._peers.get(peer) != events:
            self._peers[peer] = events
            self._selector.modify(peer.sock, events, peer)
        if not waiting and peer.close_requested is not None:
            self._drop(peer, "closed by the driver", quiet=True)

    def _serve_requests(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for peer in dirty:
            if peer.dead or peer not in self._peers:
                continue
            if peer.drop_reason is not None:
                self._drop(peer, peer.drop_reason)
            else:
                self._write(peer)

    def _expire(self, now: float) -> None:
        while self._handshaking:
            peer = next(iter(self._handshaking))
            if now - peer.accepted <= self.handshake_timeout:
                break
            self._drop(peer, f"the handshake did not complete within {self.handshake_timeout:g}s")
        if now - self._checked < 0.1:  # the scans below are O(connections writing): not per event
            return
        self._checked = now
        for peer in [p for p in self._writing if p.stalled(now, self.send_timeout)]:
            self._drop(peer, f"executor {peer.executor_id} took nothing of {peer.backlog} waiting bytes "
                             f"for {self.send_timeout:g}s")
        for peer in [p for p in self._writing if p.close_requested is not None
                     and now - p.close_requested > _CLOSE_GRACE]:
            self._drop(peer, "closed by the driver before it read everything", quiet=True)
        if self._accept_resume is not None and now >= self._accept_resume and not self._closed:
            self._accept_resume = None
            self._selector.register(self._sock, selectors.EVENT_READ, _LISTEN)

    def _drop(self, peer: Peer, reason: str, *, quiet: bool = False) -> None:
        if peer.dead:
            return
        peer.dead = True
        if not peer.authenticated:
            self._unauthenticated -= 1
        self._handshaking.pop(peer, None)
        self._writing.discard(peer)
        if self._peers.pop(peer, None) is not None:
            self._selector.unregister(peer.sock)
        try:
            peer.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        peer.sock.close()
        attached = peer.step == "open" and peer.executor_id is not None
        if not quiet:
            who = f"executor {peer.executor_id}" if peer.executor_id else f"a control connection from {peer.address}"
            # an executor that went away is the driver's to report (as lost); the rest is news here
            gone = attached and reason.startswith(("closed by the peer", "send failed", "receive failed"))
            (log.info if gone or self._closed else log.warning)("dropped %s: %s", who, reason)
        if attached:
            self._post(("closed", peer.executor_id))

    def _stop_listening(self) -> None:
        if self._sock.fileno() < 0:
            return
        if self._accept_resume is None:
            try:
                self._selector.unregister(self._sock)
            except (KeyError, ValueError):
                pass
        self._accept_resume = None
        self._sock.close()

    def _wake(self, peer: Peer | None) -> None:
        with self._lock:
            if peer is not None:
                self._dirty.add(peer)
            if self._woken:
                return
            self._woken = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed (the thread has ended)

    def _drain_wake(self) -> None:
        with self._lock:
            self._woken = False
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass


def attach(conn: Connection, executor_id: str, post: Callable[[tuple], None], first=None) -> None:
    """Hand an in-process ``conn`` (the inline backend) to the driver and forward what it receives."""
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


class DescriptorLimit(RuntimeError):
    """The process may not open enough files for the executors a job asks for."""

    def __init__(self, executors: int, needed: int, soft: int, hard: int):
        super().__init__(executors, needed, soft, hard)
        self.executors, self.needed, self.soft, self.hard = executors, needed, soft, hard

    def __str__(self) -> str:
        fits = max(0, (self.hard - (self.needed - _PER_EXECUTOR * self.executors)) // _PER_EXECUTOR)
        return (f"{self.executors} executors need about {self.needed} open files, and this process may open "
                f"at most {self.hard} (ulimit -Hn); raise it (ulimit -n {self.needed}, or LimitNOFILE= for a "
                f"service) or set max_executors to at most {fits}")


_PER_EXECUTOR = 2  # its connection, and a pipe or HTTP connection the backend keeps for it
_RESERVE = 64  # the store's connections, the scratch files, the interpreter's own


def check_descriptor_limit(executors: int) -> int:
    """Make sure ``executors`` connections fit under the open-file limit; return the soft limit.

    The soft limit is raised as far as the hard limit allows (an unprivileged process may);
    when even the hard limit is too low, ``DescriptorLimit`` says what to raise.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system: no limit to read
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 0
    needed = in_use + _RESERVE + _PER_EXECUTOR * max(0, executors)
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return soft
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise DescriptorLimit(executors, needed, soft, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    log.info("raised the open-file limit from %d to %d for %d executors", soft, needed, executors)
    return needed
