"""The control channel: mutual authentication, size limits, and nothing unpickled before auth."""

from __future__ import annotations

import pickle
import queue
import socket
import threading

import pytest

from scheduler.wire.channel import AuthenticationFailed, ChannelClosed, SocketConnection, connect
from scheduler.wire.messages import Heartbeat, Register
from scheduler.server import ControlServer


class Boom:
    def __reduce__(self):
        return (pytest.fail, ("an unauthenticated payload was unpickled",))


def test_authenticated_executor_registers():
    events: queue.Queue = queue.Queue()
    server = ControlServer("127.0.0.1", b"s" * 32, events.put)
    try:
        conn = connect(server.address, b"s" * 32)
        conn.send(Register("e1", 10.0, 1, "host"))
        conn.send(Heartbeat("e1"))
        assert events.get(timeout=5)[0] == "conn"
        assert events.get(timeout=5) == ("msg", "e1", Register("e1", 10.0, 1, "host"))
        assert events.get(timeout=5) == ("msg", "e1", Heartbeat("e1"))
        conn.close()
        assert events.get(timeout=5) == ("closed", "e1")
    finally:
        server.close()


def test_wrong_secret_is_refused_on_both_sides():
    events: queue.Queue = queue.Queue()
    server = ControlServer("127.0.0.1", b"s" * 32, events.put)
    try:
        with pytest.raises((AuthenticationFailed, ChannelClosed, ConnectionError)):
            conn = connect(server.address, b"wrong" * 8)
            conn.send(Register("e1", 1.0, 1, "h"))
            conn.recv(timeout=2)
        assert events.empty()
    finally:
        server.close()


def test_payload_from_unauthenticated_peer_is_never_unpickled():
    events: queue.Queue = queue.Queue()
    server = ControlServer("127.0.0.1", b"s" * 32, events.put)
    try:
        sock = socket.create_connection(server.address)
        raw = SocketConnection(sock, max_message=256)
        raw.recv_bytes(5)  # the server's nonce
        raw.send_bytes(pickle.dumps(Boom()).ljust(64, b" "))  # a pickle instead of a MAC
        with pytest.raises((ChannelClosed, TimeoutError)):
            raw.recv_bytes(5)
        assert events.empty()
    finally:
        server.close()


def test_oversized_message_is_refused():
    a, b = socket.socketpair()
    sender, receiver = SocketConnection(a, max_message=1024), SocketConnection(b, max_message=16)
    with pytest.raises(ValueError):
        sender.send_bytes(b"x" * 2048)
    t = threading.Thread(target=sender.send_bytes, args=(b"y" * 100,))
    t.start()
    with pytest.raises(ChannelClosed):
        receiver.recv_bytes(5)
    t.join()
