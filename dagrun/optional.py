"""Optional packages, imported on first use.

numpy speeds up newline counting and the byte-prefix sort, but importing it costs every
executor about 0.1 s of start-up, so jobs that never reach those paths never import it.
Tests set ``_numpy = None`` to run the pure-Python fallbacks.
"""

from __future__ import annotations

from typing import Any

_UNLOADED: Any = object()
_numpy: Any = _UNLOADED


def numpy() -> Any:
    """The numpy module, or None when it is not installed."""
    global _numpy
    if _numpy is _UNLOADED:
        try:
            import numpy as np
        except ImportError:
            np = None
        _numpy = np
    return _numpy
