"""Hadoop's glob alternatives, ``{a,b}``, which fsspec's glob does not know, as plain patterns.

State: none.

Policy: ``{a,b,...}`` matches any one of its comma-separated alternatives, which may hold
wildcards and groups of their own (``logs/2024-{01,02}-*/part-*``, ``{a,{b,c}}``), as in
Hadoop's ``GlobPattern``; a group of one (``x{y}``) is just its text.  ``expand_braces``
turns a pattern into the patterns without groups that together match what it matches, each
once, in order.  A ``{`` without its ``}`` is an error, as Hadoop's "Unclosed group"; a ``}``
without a ``{`` is itself.  Backslash escapes are not read.

Promise: a pattern without ``{`` comes back alone and unchanged.
"""

from __future__ import annotations

GLOB_CHARS = frozenset("*?[{")


def is_glob(path: str) -> bool:
    """Whether ``path`` is a pattern rather than a name."""
    return any(c in GLOB_CHARS for c in path)


def expand_braces(pattern: str) -> list[str]:
    """The brace-free patterns that ``pattern``'s groups stand for.

    >>> expand_braces("logs/{2024-01,2024-0{2,3}}/*.gz")
    ['logs/2024-01/*.gz', 'logs/2024-02/*.gz', 'logs/2024-03/*.gz']
    """
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth, cut, alternatives = 0, start + 1, []
    for end in range(start, len(pattern)):
        c = pattern[end]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                alternatives.append(pattern[cut:end])
                break
        elif c == "," and depth == 1:
            alternatives.append(pattern[cut:end])
            cut = end + 1
    else:
        raise ValueError(f"illegal file pattern {pattern!r}: the '{{' at position {start} has no '}}' "
                         "(Hadoop's unclosed group); close it, or leave braces out of the name")
    head, tails = pattern[:start], expand_braces(pattern[end + 1:])
    out = [head + alt + tail for choice in alternatives for alt in expand_braces(choice) for tail in tails]
    return list(dict.fromkeys(out))
