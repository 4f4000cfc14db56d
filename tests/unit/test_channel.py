"""The control channel: mutual authentication, size limits, and nothing unpickled before auth."""

from __future__ import annotations

import pickle
import queue
import socket
import threading
import tracemalloc

import pytest

from scheduler.wire.channel import _HEADER, AuthenticationFailed, ChannelClosed, SocketConnection, connect, is_loopback, mac
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


def _fake_driver(nonce: bytes):
    """A listener that offers ``nonce`` as its challenge and then waits."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        sock, _ = listener.accept()
        SocketConnection(sock, max_message=256).send_bytes(nonce)
        sock.settimeout(5)
        try:
            sock.recv(1024)
        except OSError:
            pass
        sock.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener


@pytest.mark.timeout(30)
@pytest.mark.parametrize("length", [16, 31, 33, 200])
def test_a_challenge_that_is_not_32_bytes_is_refused(length):
    listener = _fake_driver(b"n" * length)
    try:
        with pytest.raises(AuthenticationFailed, match=f"{length}-byte challenge"):
            connect(listener.getsockname(), b"s" * 32, timeout=5)
    finally:
        listener.close()


@pytest.mark.timeout(30)
def test_a_reply_of_the_wrong_length_is_refused_by_the_driver():
    events: queue.Queue = queue.Queue()
    server = ControlServer("127.0.0.1", b"s" * 32, events.put)
    try:
        sock = socket.create_connection(server.address)
        raw = SocketConnection(sock, max_message=256)
        nonce = raw.recv_bytes(5)
        assert len(nonce) == 32
        raw.send_bytes(mac(b"s" * 32, b"executor", nonce) + b"short")  # a right MAC, a 5-byte nonce
        with pytest.raises((ChannelClosed, TimeoutError)):
            raw.recv_bytes(5)
        assert events.empty()
    finally:
        server.close()


def test_mac_fields_are_length_framed():
    secret = b"k" * 32
    # the same concatenation split differently must not give the same MAC
    assert mac(secret, b"executor", b"ab", b"c") != mac(secret, b"executor", b"a", b"bc")
    assert mac(secret, b"executora", b"b") != mac(secret, b"executor", b"ab")


@pytest.mark.parametrize("host, expected", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
    ("localhost", True), ("LOCALHOST.", True),
    ("127.example.com", False), ("127.0.0.1.nip.io", False), ("10.0.0.1", False), ("0.0.0.0", False),
    ("::", False), ("", False), ("example.com", False),
])
def test_is_loopback_parses_addresses_instead_of_matching_prefixes(host, expected):
    assert is_loopback(host) is expected


def test_is_loopback_resolves_names_only_when_asked(monkeypatch):
    asked = []

    def fake_getaddrinfo(name, *args, **kwargs):
        asked.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 0, "", ("127.0.0.1", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert is_loopback("driver.internal") is False and asked == []
    assert is_loopback("driver.internal", resolve=True) is True and asked == ["driver.internal"]


@pytest.mark.timeout(30)
def test_a_huge_length_header_is_not_allocated_by_the_receiver():
    a, b = socket.socketpair()
    receiver = SocketConnection(b)  # the default 1 GiB limit: the header alone is within it
    tracemalloc.start()

    def send_and_hang_up():
        a.sendall(_HEADER.pack(900 << 20) + b"x" * (1 << 20))
        a.close()

    threading.Thread(target=send_and_hang_up, daemon=True).start()
    try:
        with pytest.raises(ChannelClosed):
            receiver.recv_bytes(5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak} bytes allocated for a 1 MiB partial message"
