"""TLS for the control channel when executors are not on loopback (Lambda in a VPC).

State: per driver, one self-signed certificate and key, made when its ``ControlServer``
starts, loaded into an ``ssl.SSLContext`` and then deleted from disk.  Per connection, a
``TLSSocket``: the raw socket plus an ``ssl.SSLObject`` over two memory BIOs.

Policy:
- The certificate comes from the ``openssl`` command line (``openssl req -x509``), else from
  the ``cryptography`` package if it is importable; neither is a dependency of dagrun, and
  ``TLSUnavailable`` says what to install when both are missing.
- Executors do not verify the certificate (it is self-signed and made per driver).  Instead
  its SHA-256 fingerprint is bound into the job-secret HMAC (``channel``): a peer in the
  middle presenting another certificate fails the challenge on both sides.
- OpenSSL objects must not be used by two threads at once, yet a connection is read by one
  thread while others send (heartbeats, the driver loop).  So TLS runs over memory BIOs:
  the socket I/O happens outside a lock, and every call into the ``SSLObject`` holds it.
  TLS 1.3 session tickets are turned off, so nothing but application data follows the
  handshake.

Promise: ``TLSSocket`` offers the subset of the socket API that ``SocketConnection`` uses
(``sendall``, ``recv_into``, ``settimeout``, ``setsockopt``, ``shutdown``, ``close``), so
the framing and authentication code is the same over TCP and TLS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

_CHUNK = 1 << 20


class TLSUnavailable(RuntimeError):
    """No way to make the driver's certificate: neither the openssl CLI nor `cryptography`."""

    def __str__(self) -> str:
        return (f"{self.args[0] if self.args else 'cannot create a TLS certificate'}; the driver needs TLS "
                "because its control address is not loopback. Install the openssl command line tool or "
                "`pip install cryptography`, or bind the driver to loopback (driver_host=127.0.0.1).")


def fingerprint(der: bytes) -> bytes:
    """What both sides bind into the job-secret challenge (RFC 5929's tls-server-end-point)."""
    return hashlib.sha256(der).digest()


def server_context() -> tuple[ssl.SSLContext, bytes]:
    """A server context holding a fresh self-signed certificate, and that certificate (DER)."""
    workdir = tempfile.mkdtemp(prefix="dagrun-tls-")
    try:
        os.chmod(workdir, 0o700)
        cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
        _make_certificate(cert, key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.num_tickets = 0  # nothing after the handshake but application data
        context.load_cert_chain(cert, key)
        with open(cert) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        return context, der
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # identity is proven by the fingerprint-bound HMAC
    return context


def _make_certificate(cert: str, key: str) -> None:
    openssl = shutil.which("openssl")
    if openssl:
        cmd = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "7",
               "-subj", "/CN=dagrun-driver", "-keyout", key, "-out", cert]
        done = subprocess.run(cmd, capture_output=True, timeout=60)
        if done.returncode == 0:
            return
        if not _have_cryptography():
            raise TLSUnavailable(f"`openssl req` failed: {done.stderr.decode(errors='replace').strip()}")
    elif not _have_cryptography():
        raise TLSUnavailable("neither the openssl command nor the `cryptography` package is available")
    _make_with_cryptography(cert, key)


def _have_cryptography() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def _make_with_cryptography(cert: str, key: str) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dagrun-driver")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .sign(private, hashes.SHA256()))
    with open(key, "wb", opener=lambda p, f: os.open(p, f, 0o600)) as f:
        f.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    with open(cert, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))


class TLSSocket:
    """A TLS session over a connected socket; see the module docstring for the locking."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool, timeout: float):
        self._sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=server_side)
        self._ssl_lock = threading.Lock()
        self._send_lock = threading.Lock()
        sock.settimeout(timeout)
        self._handshake()

    def peer_certificate(self) -> bytes:
        return self._obj.getpeercert(binary_form=True) or b""

    def _handshake(self) -> None:
        while True:
            try:
                with self._ssl_lock:
                    self._obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                raw = self._sock.recv(65536)
                if not raw:
                    raise ConnectionError("the peer closed the connection during the TLS handshake") from None
                with self._ssl_lock:
                    self._in.write(raw)

    def _flush(self) -> None:
        with self._send_lock:
            with self._ssl_lock:
                data = self._out.read()
            if data:
                self._sock.sendall(data)

    def sendall(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        with self._send_lock:
            while view:
                with self._ssl_lock:
                    written = self._obj.write(view[:_CHUNK])
                    encrypted = self._out.read()
                view = view[written:]
                self._sock.sendall(encrypted)

    def recv_into(self, buffer: memoryview, nbytes: int = 0) -> int:
        nbytes = nbytes or len(buffer)
        while True:
            with self._ssl_lock:
                try:
                    data = self._obj.read(nbytes)
                except ssl.SSLWantReadError:
                    data = None
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return 0
                pending = self._out.pending
            if pending:
                self._flush()  # e.g. an alert or key update the read produced
            if data is not None:
                buffer[:len(data)] = data
                return len(data)
            raw = self._sock.recv(65536)  # raises socket.timeout per settimeout, like a plain socket
            if not raw:
                return 0
            with self._ssl_lock:
                self._in.write(raw)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def setsockopt(self, *args) -> None:
        self._sock.setsockopt(*args)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()
