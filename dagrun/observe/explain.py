"""``rdd.explain()``: the stage plan, before anything runs.

It lists each stage with its task count, the narrow operations fused into it, its inputs
(byte-range splits, whole-file compressed inputs), and the shuffles it reads and writes.
With ``cost=True`` it adds an estimate of store requests for the job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagrun.graph.planner import StageGraph, coalescible, fused_chain
from dagrun.observe.estimate import estimate_text

if TYPE_CHECKING:
    from dagrun.graph.nodes import Node


def explain(rdd: "Node", cost: bool = False, input_size: str | int | None = None) -> str:
    graph = StageGraph(rdd, rdd.ctx._next_id)
    stages = graph.stages()
    lines = [f"== dagrun plan: {len(stages)} stage{'s' if len(stages) != 1 else ''} =="]
    maps = {}
    for stage in stages:
        tasks = stage.rdd.get_num_partitions()
        head = f"Stage {stage.stage_id} ({stage.kind}): {tasks} task{'s' if tasks != 1 else ''}"
        task_bytes = rdd.ctx.config.reduce_task_bytes
        if tasks > 1 and task_bytes and coalescible(graph, stage):
            head += f" at most (consecutive partitions run together, up to {task_bytes / (1 << 20):g} MiB of shuffle input)"
        if stage.dependency is not None:
            p = stage.dependency.partitioner
            head += f", writes shuffle {stage.dependency.shuffle_id} into {p.num_partitions} partitions"
            if stage.dependency.aggregator is not None:
                head += " (combined on the map side)"
            maps[stage.dependency.shuffle_id] = tasks
        if stage.parents:
            head += f", after stage{'s' if len(stage.parents) > 1 else ''} {', '.join(map(str, stage.parents))}"
        lines.append(head)
        for r in fused_chain(stage.rdd, stage.kind == "cache"):
            dep = r.shuffle_dependency
            if r is not stage.rdd and r._cache_id is not None and stage.kind != "cache":
                lines.append(f"    <- reads persisted {r.name()} [{r.get_num_partitions()} partitions]")
                continue
            text = f"    {r.name()} [{r.get_num_partitions()} partitions]"
            if dep is not None:
                text += f" <- shuffle {dep.shuffle_id} boundary"
            lines.append(text)
            if r.describe_input():
                lines.append(f"        input: {r.describe_input()}")
    if cost:
        lines.append(estimate_text(graph, input_size, rdd.ctx.config))
    return "\n".join(lines)
