"""The driver's control server under abuse and at scale: real sockets on 127.0.0.1, bounded in time."""

from __future__ import annotations

import errno
import logging
import os
import queue
import resource
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from scheduler.server import ControlServer
from scheduler.wire.channel import _HEADER, ChannelClosed, client_handshake, connect
from scheduler.wire.messages import Heartbeat, Register, Shutdown

SECRET = b"s" * 32
pytestmark = pytest.mark.timeout(60)


def _server(**kwargs) -> tuple[queue.Queue, ControlServer]:
    events: queue.Queue = queue.Queue()
    return events, ControlServer("127.0.0.1", SECRET, events.put, **kwargs)


def _register(server: ControlServer, events: queue.Queue, executor_id: str, timeout: float = 10.0):
    """An authentic executor: connect, register, and return (its end, the driver's end)."""
    conn = connect(server.address, SECRET, timeout=timeout, tls=server.tls)
    conn.send(Register(executor_id, 60.0, os.getpid(), "host"))
    kind, got_id, driver_side = _next(events, "conn", timeout)
    assert got_id == executor_id
    assert _next(events, "msg", timeout)[1:] == (executor_id, Register(executor_id, 60.0, os.getpid(), "host"))
    return conn, driver_side


def _next(events: queue.Queue, kind: str, timeout: float) -> tuple:
    item = events.get(timeout=timeout)
    assert item[0] == kind, item
    return item


def _closed_by_server(sock: socket.socket, timeout: float) -> float:
    """Seconds until the server closes ``sock`` (reading and discarding what it sends)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


@pytest.mark.parametrize("tls", [False, True])
def test_a_peer_that_sends_a_header_and_stalls_is_dropped_at_the_handshake_deadline(tls):
    events, server = _server(tls=tls, handshake_timeout=0.5)
    try:
        sock = socket.create_connection(server.address)
        started = time.monotonic()
        sock.sendall(_HEADER.pack(64))  # a header promising a MAC that never comes (over TLS: garbage)
        waited = _closed_by_server(sock, timeout=10)
        assert time.monotonic() - started < 3.0, waited
        assert events.empty()
        conn, _ = _register(server, events, "e1")  # the server is still serving
        conn.close()
    finally:
        server.close()


@pytest.mark.parametrize("tls", [False, True])
def test_connections_beyond_the_unauthenticated_cap_are_refused_and_an_executor_still_registers(tls):
    events, server = _server(tls=tls, max_pending=4, handshake_timeout=1.5)
    try:
        stalled = [socket.create_connection(server.address) for _ in range(4)]
        time.sleep(0.2)  # accepted and counted
        beyond = [socket.create_connection(server.address) for _ in range(3)]
        for sock in beyond:
            assert _closed_by_server(sock, timeout=5) < 1.0  # refused at once, not at the deadline
        started = time.monotonic()
        conn, driver_side = _register(server, events, "e1", timeout=15)  # retries until a slot frees
        assert time.monotonic() - started < 10
        driver_side.send(Shutdown("done"))
        assert conn.recv(timeout=5) == Shutdown("done")
        for sock in stalled:
            assert _closed_by_server(sock, timeout=5) < 5
        conn.close()
    finally:
        server.close()


def test_accept_survives_running_out_of_descriptors(caplog):
    """A real EMFILE: the open-file limit is lowered and every free descriptor taken."""
    events, server = _server()
    client = socket.socket()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    caplog.set_level(logging.WARNING, logger="dagrun.scheduler")
    try:
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 16, hard))
        try:
            while True:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            assert exc.errno == errno.EMFILE
        client.connect(server.address)  # sits in the backlog: the server cannot accept it
        deadline = time.monotonic() + 10
        while not any("cannot accept" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the server never reported the failed accept"
            time.sleep(0.05)
        assert any("ulimit -n" in r.getMessage() for r in caplog.records)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert server._thread.is_alive()
        conn = client_handshake(client, SECRET, tls=False, timeout=10)
        conn.send(Register("e1", 60.0, 1, "h"))
        assert _next(events, "conn", 10)[1] == "e1"
        assert _next(events, "msg", 10)[1] == "e1"
        conn.close()
        assert _next(events, "closed", 10) == ("closed", "e1")
        other, _ = _register(server, events, "e2")
        other.close()
    finally:
        server.close()


def test_a_huge_length_header_from_an_authenticated_peer_is_not_allocated():
    events, server = _server()
    try:
        conn, _ = _register(server, events, "e1")
        tracemalloc.start()
        try:
            conn._sock.sendall(_HEADER.pack(900 << 20) + b"x" * (1 << 20))  # claims 900 MiB, sends 1
            time.sleep(1.0)  # the I/O thread reads what came
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 32 << 20, f"{peak} bytes allocated for a 1 MiB partial message"
        conn.close()
        assert _next(events, "closed", 5) == ("closed", "e1")
    finally:
        server.close()


def test_a_stuck_peer_does_not_delay_sends_to_others_and_is_dropped():
    events, server = _server(send_timeout=1.5)
    try:
        stuck, to_stuck = _register(server, events, "stuck")  # never reads
        fine, to_fine = _register(server, events, "fine")
        started = time.monotonic()
        for _ in range(40):  # far more than the socket buffers hold
            to_stuck.send(Shutdown("x" * (1 << 20)))
        assert time.monotonic() - started < 2.0  # enqueued, not written by this thread
        sent = time.monotonic()
        to_fine.send(Shutdown("go"))
        assert fine.recv(timeout=5) == Shutdown("go")
        assert time.monotonic() - sent < 1.0
        assert _next(events, "closed", 10) == ("closed", "stuck")
        with pytest.raises(ChannelClosed):
            to_stuck.send(Heartbeat("again"))
        fine.send(Heartbeat("fine"))
        assert events.get(timeout=5) == ("msg", "fine", Heartbeat("fine"))
        for conn in (stuck, fine):
            conn.close()
    finally:
        server.close()


def test_a_send_beyond_the_queue_limit_drops_the_peer_at_once():
    events, server = _server(queue_limit=4 << 20)
    try:
        stuck, to_stuck = _register(server, events, "stuck")
        with pytest.raises(ChannelClosed, match="send queue"):
            for _ in range(40):
                to_stuck.send(Shutdown("x" * (1 << 20)))
        assert _next(events, "closed", 5) == ("closed", "stuck")
        stuck.close()
    finally:
        server.close()


def test_two_hundred_and_fifty_executors_on_one_io_thread():
    threads_before = threading.active_count()
    events, server = _server()
    conns = []
    try:
        driver_sides = {}
        for i in range(250):
            conn = connect(server.address, SECRET, timeout=20)
            conn.send(Register(f"e{i}", 60.0, i, "h"))
            conns.append(conn)
        while len(driver_sides) < 250:
            item = events.get(timeout=20)
            if item[0] == "conn":
                driver_sides[item[1]] = item[2]
        assert threading.active_count() <= threads_before + 1  # the I/O thread, no thread per connection
        for executor_id, side in driver_sides.items():
            side.send(Shutdown(executor_id))
        assert [c.recv(timeout=10) for c in conns] == [Shutdown(f"e{i}") for i in range(250)]
    finally:
        for conn in conns:
            conn.close()
        server.close()


def test_after_close_nobody_connects_and_connected_executors_see_the_end():
    events, server = _server()
    conn, to_conn = _register(server, events, "e1")
    to_conn.send(Shutdown("bye"))
    server.close()
    assert conn.recv(timeout=5) == Shutdown("bye")  # what was sent before close still arrives
    with pytest.raises(ChannelClosed):
        conn.recv(timeout=5)
    with pytest.raises(OSError):
        connect(server.address, SECRET, timeout=2)


def test_descriptor_limit_is_raised_when_it_can_be_and_named_when_it_cannot():
    script = (
        "import resource, sys\n"
        "from scheduler.server import check_descriptor_limit, DescriptorLimit\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, int(sys.argv[1])))\n"
        "try:\n"
        "    print(check_descriptor_limit(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "except DescriptorLimit as exc:\n"
        "    print('refused:', exc)\n"
    )
    enough = subprocess.run([sys.executable, "-c", script, "8192"], capture_output=True, text=True, timeout=30)
    raised, now = map(int, enough.stdout.split())
    assert 2064 <= raised == now <= 8192
    short = subprocess.run([sys.executable, "-c", script, "512"], capture_output=True, text=True, timeout=30)
    assert short.stdout.startswith("refused: 1000 executors need about"), short.stdout + short.stderr
    assert "ulimit -n" in short.stdout and "max_executors to at most" in short.stdout


def test_a_context_asking_for_more_executors_than_the_limit_allows_says_what_to_raise():
    script = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512))\n"
        "import dagrun\n"
        "with dagrun.Context(executor='local', max_executors=1000, conf={'progress': 'off'}) as ctx:\n"
        "    ctx.parallelize(range(4), 2).sum()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "DescriptorLimit: 1000 executors need about" in done.stderr and "ulimit -n" in done.stderr, done.stderr


def test_a_connection_aborted_before_accept_is_skipped():
    events, server = _server()
    real = server._accept_one
    calls = []

    def aborted_once():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort")
        return real()

    server._accept_one = aborted_once
    try:
        conn, _ = _register(server, events, "e1")
        assert len(calls) >= 2
        conn.close()
    finally:
        server.close()


@pytest.mark.parametrize("tls", [False, True])
def test_large_messages_arrive_whole_both_ways(tls):
    events, server = _server(tls=tls)
    try:
        conn, driver_side = _register(server, events, "e1")
        big = Shutdown(os.urandom(12 << 20).hex())  # 24 MB of text: many reads, many TLS records
        conn.send(big)
        assert events.get(timeout=30) == ("msg", "e1", big)
        driver_side.send(big)
        assert conn.recv(timeout=30) == big
        conn.close()
    finally:
        server.close()
