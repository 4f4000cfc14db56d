"""TLS on the control channel, forced on over 127.0.0.1 (both sides), as a non-loopback driver uses it."""

from __future__ import annotations

import queue
import shutil
import socket
import threading

import pytest

from scheduler.wire import tls
from scheduler.wire.channel import AuthenticationFailed, ChannelClosed, connect
from scheduler.wire.messages import Heartbeat, Register, Shutdown
from scheduler.server import ControlServer

SECRET = b"s" * 32


def _events(server_tls: bool = True):
    events: queue.Queue = queue.Queue()
    return events, ControlServer("127.0.0.1", SECRET, events.put, tls=server_tls)


def test_tls_channel_carries_messages_both_ways_with_concurrent_senders():
    events, server = _events()
    try:
        assert server.tls
        conn = connect(server.address, SECRET, tls=True)
        conn.send(Register("e1", 10.0, 1, "host"))
        kind, executor_id, driver_side = events.get(timeout=5)
        assert (kind, executor_id) == ("conn", "e1")
        assert events.get(timeout=5) == ("msg", "e1", Register("e1", 10.0, 1, "host"))
        big = Shutdown("x" * 300_000)  # several TLS records
        senders = [threading.Thread(target=lambda: [conn.send(Heartbeat("e1")) for _ in range(50)]) for _ in range(3)]
        for t in senders:
            t.start()
        driver_side.send(big)  # while the executor's reader is idle and its senders are busy
        assert conn.recv(timeout=5) == big
        for t in senders:
            t.join()
        assert [events.get(timeout=5) for _ in range(150)] == [("msg", "e1", Heartbeat("e1"))] * 150
        conn.close()
        assert events.get(timeout=5) == ("closed", "e1")
    finally:
        server.close()


def test_plain_client_cannot_talk_to_a_tls_server():
    events, server = _events()
    try:
        with pytest.raises((AuthenticationFailed, ChannelClosed, ConnectionError, TimeoutError)):
            conn = connect(server.address, SECRET, tls=False, timeout=1)
            conn.send(Register("e1", 1.0, 1, "h"))
            conn.recv(timeout=2)
        assert events.empty()
    finally:
        server.close()


def test_a_relay_with_its_own_certificate_fails_the_challenge():
    """A peer in the middle terminating TLS on both sides cannot pass the fingerprint-bound HMAC."""
    events, server = _events()
    relay_context, _ = tls.server_context()
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(src, dst):
        buf = memoryview(bytearray(65536))
        try:
            while (n := src.recv_into(buf, len(buf))) > 0:
                dst.sendall(buf[:n])
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def relay():
        down = tls.TLSSocket(listener.accept()[0], relay_context, server_side=True, timeout=5)
        up = tls.TLSSocket(socket.create_connection(server.address), tls.client_context(), server_side=False, timeout=5)
        threading.Thread(target=pump, args=(up, down), daemon=True).start()
        pump(down, up)

    threading.Thread(target=relay, daemon=True).start()
    try:
        with pytest.raises((AuthenticationFailed, ChannelClosed)):
            connect(listener.getsockname(), SECRET, tls=True, timeout=5)
        assert events.empty()
    finally:
        listener.close()
        server.close()


def test_certificate_from_cryptography_when_there_is_no_openssl_command(monkeypatch):
    pytest.importorskip("cryptography")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    context, der = tls.server_context()
    assert der and context.num_tickets == 0


def test_no_way_to_make_a_certificate_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(tls, "_have_cryptography", lambda: False)
    with pytest.raises(tls.TLSUnavailable, match="pip install cryptography"):
        ControlServer("0.0.0.0", SECRET, lambda event: None)


def test_loopback_stays_plain_tcp():
    _, server = _events(server_tls=None)
    try:
        assert not server.tls
    finally:
        server.close()
