"""The deployment zip of the executor function: dagrun's packages plus its dependencies.

State: none.  A build happens in a temporary directory and returns the zip's bytes.

Policy:
- The project packages (``dagrun``, ``shuffle``, ``scheduler``, ``lambda_executor``) are
  copied from where this interpreter imports them, source files only.
- Dependencies are pinned to the versions installed here, because pickles cross between
  the driver and the function: cloudpickle only promises to load what the same cloudpickle
  version on the same Python minor version wrote (so the runtime defaults to this
  interpreter's, see ``default_runtime``).
- lz4, zstandard and psutil are compiled extensions, so the wheels must be Lambda's
  (Amazon Linux, manylinux) for the chosen architecture, never this machine's.  They come
  from ``pip install --target --platform manylinux... --only-binary=:all:`` for the
  runtime's Python; when pip cannot get them (offline, no such wheel) the build fails with
  ``PackagingError`` rather than shipping wheels that would not import.  ``with_deps=False``
  ships only dagrun's own code, for a function whose dependencies come from a layer.
- The zip is reproducible (sorted entries, fixed timestamps and modes), so an unchanged
  build has the same CodeSha256 and ``deploy`` skips the code upload.

Promise: ``build_zip`` returns a zip whose root holds the packages, ready for
``Code={"ZipFile": ...}`` with handler ``lambda_executor.handler.handler``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PROJECT_PACKAGES = ("dagrun", "shuffle", "scheduler", "lambda_executor")
# boto3/botocore come with the runtime; s3fs brings a botocore that its aiobotocore pins
_EXTRA_FOR_S3 = ("s3fs",)
_SKIP_DIRS = {"__pycache__"}
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Lambda's OS: Amazon Linux 2 (glibc 2.26) up to python3.11, Amazon Linux 2023 (glibc 2.34) after
_PLATFORM = {"python3.9": "manylinux2014", "python3.10": "manylinux2014", "python3.11": "manylinux2014",
             "python3.12": "manylinux_2_34", "python3.13": "manylinux_2_34"}
_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
MAX_DIRECT_UPLOAD = 50 * 1000 * 1000  # bytes; larger zips go through S3


class PackagingError(RuntimeError):
    """The zip cannot be built as asked; the message says what to change."""


def default_runtime() -> str:
    """``pythonX.Y`` of this interpreter: the function must unpickle what this driver pickles."""
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if runtime not in _PLATFORM:
        raise PackagingError(f"AWS Lambda has no {runtime} runtime; run the driver on one of "
                             f"{', '.join(sorted(_PLATFORM))}")
    return runtime


def requirements(include_s3: bool = True) -> list[str]:
    """dagrun's runtime requirements, pinned to the versions installed here."""
    names = []
    for req in importlib.metadata.requires("dagrun") or []:
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0)  # type: ignore[union-attr]
        if "extra ==" not in req or (include_s3 and name in _EXTRA_FOR_S3):
            names.append(name)
    pinned = []
    for name in dict.fromkeys(names):  # s3fs is in more than one extra
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


def build_zip(*, arch: str = "x86_64", runtime: str | None = None, with_deps: bool = True,
              include_s3: bool = True, pip_args: tuple[str, ...] = (),
              user_requirements: str | os.PathLike | None = None) -> bytes:
    """Build the function's zip; see the module docstring for what goes in."""
    if arch not in _MACHINE:
        raise PackagingError(f"architecture {arch!r} is not one of Lambda's: x86_64, arm64")
    runtime = runtime or default_runtime()
    if runtime not in _PLATFORM:
        raise PackagingError(f"runtime {runtime!r} is not supported; choose one of {', '.join(sorted(_PLATFORM))}")
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="dagrun-package-") as tmp, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        files: dict[str, Path] = {}
        if user_requirements is not None:
            if not Path(user_requirements).is_file():
                raise PackagingError(f"requirements file {str(user_requirements)!r} does not exist; pass the path "
                                     "of your job's requirements.txt")
            pip_args = (*pip_args, "-r", str(Path(user_requirements).resolve()))
        if with_deps or user_requirements is not None:
            target = Path(tmp) / "deps"
            _pip_install(requirements(include_s3) if with_deps else [], target, arch, runtime, pip_args)
            files.update(_tree(target))
        for package in PROJECT_PACKAGES:
            root = Path(importlib.import_module(package).__file__).parent  # type: ignore[arg-type]
            files.update({f"{package}/{name}": path for name, path in _tree(root).items()})
        for name in sorted(files):
            info = zipfile.ZipInfo(name, _EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name].read_bytes())
    return buffer.getvalue()


def code_sha256(data: bytes) -> str:
    """The zip's digest as Lambda reports it (``CodeSha256``: base64 of SHA-256)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _pip_install(reqs: list[str], target: Path, arch: str, runtime: str, pip_args: tuple[str, ...]) -> None:
    platform = f"{_PLATFORM[runtime]}_{_MACHINE[arch]}"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(target), "--platform", platform, "--implementation", "cp",
           "--python-version", runtime.removeprefix("python"), "--only-binary=:all:", *pip_args, *reqs]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise PackagingError(
            f"pip could not get Lambda ({platform}, {runtime}) wheels for {' '.join(reqs)}:\n{tail}\n"
            "lz4, zstandard and psutil are compiled, so the function needs their manylinux wheels, not this "
            "machine's. Build where PyPI (or your index, via --pip-arg=--index-url=...) is reachable, or deploy "
            "with --no-deps and a layer (--layer ARN) that provides them.")


def _tree(root: Path) -> dict[str, Path]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        top = Path(dirpath) == root  # pip --target puts console scripts in bin/: not importable, not needed
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not (top and d == "bin"))
        for filename in filenames:
            if filename.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / filename
            out[path.relative_to(root).as_posix()] = path
    return out
