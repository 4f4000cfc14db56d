"""Stages pickled by value keep their code's file names (dagrun/graph/traceable_pickle.py)."""

from __future__ import annotations

import pickle

from dagrun.graph.traceable_pickle import dumps


def test_functions_and_their_inner_code_keep_their_file():
    def outer(x):
        def inner(y):
            return [z for z in range(y)]
        return inner(x)

    copy = pickle.loads(dumps({"f": outer, "g": lambda v: v + 1}))
    assert copy["f"](3) == [0, 1, 2] and copy["g"](1) == 2
    assert copy["f"].__code__.co_filename == __file__
    inner_codes = [c for c in copy["f"].__code__.co_consts if hasattr(c, "co_filename")]
    assert inner_codes and all(c.co_filename == __file__ for c in inner_codes)
    assert copy["g"].__code__.co_firstlineno == outer.__code__.co_firstlineno + 5
