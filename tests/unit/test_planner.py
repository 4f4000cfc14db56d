"""The planner: fusion of narrow operations, cuts at shuffles, per-task reads."""

from __future__ import annotations

import operator

import cloudpickle
import pytest

import dagrun
from dagrun.graph.planner import StageGraph, plan_job, reads_of
from dagrun.runtime.user_files import unpack_stage


@pytest.fixture
def pctx():
    with dagrun.Context(executor="inline", conf={"progress": "off"}) as c:
        yield c


def test_narrow_chain_is_one_stage(pctx):
    rdd = pctx.parallelize(range(10), 3).map(lambda x: x + 1).filter(bool).flat_map(lambda x: [x, x])
    graph = StageGraph(rdd._node, pctx._next_id)
    assert len(graph.stages()) == 1
    # map/filter/flat_map fused into a single function over the source
    assert rdd._node.parents[0].op_name == "parallelize"


def test_each_shuffle_cuts_a_stage(pctx):
    rdd = (pctx.parallelize(range(10), 3).map(lambda x: (x % 2, x)).reduce_by_key(operator.add)
           .map(lambda kv: (kv[1], kv[0])).group_by_key(2))
    stages = StageGraph(rdd._node, pctx._next_id).stages()
    assert [s.kind for s in stages] == ["shuffle", "shuffle", "result"]
    assert stages[2].parents == [stages[1].stage_id]
    assert stages[1].parents == [stages[0].stage_id]


def test_join_has_two_map_stages_feeding_one_reduce(pctx):
    a = pctx.parallelize([(1, "a")], 2).reduce_by_key(operator.add)
    b = pctx.parallelize([(1, "b")], 3).reduce_by_key(operator.add)
    stages = StageGraph(a.join(b)._node, pctx._next_id).stages()
    result = stages[-1]
    assert len(stages) == 4  # two reduce_by_key maps, the join's map, the result
    assert len(result.parents) == 1


def test_reads_name_exactly_the_shuffle_partitions_a_task_needs(pctx):
    a = pctx.parallelize([(i, i) for i in range(6)], 2).partition_by(3)
    b = pctx.parallelize([(i, i) for i in range(6)], 2).partition_by(2)
    union = a.union(b)
    reads = [reads_of(union._node, s) for s in union._node.splits]
    sa, sb = a._node.shuffle_dependency.shuffle_id, b._node.shuffle_dependency.shuffle_id
    assert reads == [[(sa, 0)], [(sa, 1)], [(sa, 2)], [(sb, 0)], [(sb, 1)]]


def test_coalesce_groups_adjacent_partitions(pctx):
    rdd = pctx.parallelize(range(10), 5).coalesce(2)
    assert [len(s.parents) for s in rdd._node.splits] == [2, 3]
    assert rdd.glom().collect() == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]


def test_stage_blob_stops_at_the_shuffle_boundary(pctx):
    big = list(range(100_000))
    rdd = pctx.parallelize(big, 2).map(lambda x: (x % 2, x)).reduce_by_key(operator.add).map_values(str)
    job, graph = plan_job(pctx, rdd._node, lambda tc, it: list(it), [0, 1], "job-x")
    result_blob = job.stage_blobs[job.result_stage]
    assert len(result_blob) < 20_000  # neither the parent stage nor its data travel with it
    plan = cloudpickle.loads(unpack_stage(result_blob)[3])
    assert plan.rdd.parents[0].parents == []
    map_stage = next(s for s in job.stages.values() if s.shuffle_id is not None)
    assert len(job.stage_blobs[map_stage.stage_id]) < 20_000  # slices travel per task, not per stage
    assert sum(len(job.task_blobs[(map_stage.stage_id, p)]) for p in (0, 1)) > 100_000


def test_persisted_rdd_becomes_a_cache_stage(pctx):
    base = pctx.parallelize(range(10), 2).map(lambda x: x * 2).persist()
    stages = StageGraph(base.map(lambda x: x + 1)._node, pctx._next_id).stages()
    assert [s.kind for s in stages] == ["cache", "result"]


def test_explain_names_stages_and_boundaries(pctx, tmp_path, capsys):
    import gzip

    (tmp_path / "a.txt").write_text("x\ny\n")
    with gzip.open(tmp_path / "b.txt.gz", "wt") as f:
        f.write("z\n")
    rdd = pctx.text_file(str(tmp_path)).map(lambda l: (l, 1)).reduce_by_key(operator.add)
    text = rdd.explain()
    assert "Stage" in text and "shuffle" in text and "combined on the map side" in text
    assert "gzip files are read whole" in text
    assert capsys.readouterr().out.strip() == text.strip()
