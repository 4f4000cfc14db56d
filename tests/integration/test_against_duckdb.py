"""The uservisits aggregation gives DuckDB's answer (an independent engine)."""

from __future__ import annotations

import operator

import pytest

import dagrun
from dagrun.cli.gen import generate

duckdb = pytest.importorskip("duckdb")


def test_uservisits_revenue_matches_duckdb(local_ctx, tmp_path):
    files = generate("uservisits", str(tmp_path / "uv"), size=2_000_000, seed=7, files=3)
    got = dict(local_ctx.text_file(str(tmp_path / "uv"), split_size=100_000)
               .map(lambda line: (line.split(",")[0][:8], float(line.split(",")[3])))
               .reduce_by_key(operator.add).collect())
    rows = duckdb.sql(
        f"SELECT substr(column0, 1, 8), sum(column3) FROM read_csv('{tmp_path}/uv/*.csv', header=false, "
        "columns={'column0': 'VARCHAR', 'column1': 'VARCHAR', 'column2': 'VARCHAR', 'column3': 'DOUBLE', "
        "'column4': 'VARCHAR', 'column5': 'VARCHAR', 'column6': 'VARCHAR', 'column7': 'VARCHAR', "
        "'column8': 'VARCHAR'}) GROUP BY 1").fetchall()
    expected = dict(rows)
    assert len(files) == 3 and len(expected) > 100
    assert got.keys() == expected.keys()
    for key, total in expected.items():
        assert got[key] == pytest.approx(total, rel=1e-9)
