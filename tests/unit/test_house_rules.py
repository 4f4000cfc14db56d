"""The layout rules of docs/architecture.md that are not import rules: module size and top level."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dagrun", "shuffle", "scheduler", "lambda_executor")


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_dagrun_keeps_a_small_top_level():
    entries = [p.name for p in (ROOT / "dagrun").iterdir()
               if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())]
    assert len(entries) <= 12, sorted(entries)


def test_every_package_is_marked_typed():
    assert all((ROOT / pkg / "py.typed").exists() for pkg in PACKAGES)
