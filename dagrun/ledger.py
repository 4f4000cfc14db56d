"""Prices, and the request and cost estimate that ``explain(cost=True)`` prints.

Default prices are the us-east-1 list prices; override any of them with
``conf={"dagrun.prices": {"lambda_gb_s_x86": ...}}``.  The estimate assumes one PUT per map
task, one ranged GET per (map, reduce) pair with data, one GET per input split per 8 MiB
read, a throughput of ``throughput_mb_s`` per executor, and the configured Lambda memory.
"""

from __future__ import annotations

from typing import Any

DEFAULT_PRICES = {
    "lambda_gb_s_x86": 0.0000166667,
    "lambda_gb_s_arm": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_list": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "s3_head": 0.0004 / 1000,
    "s3_delete": 0.0,
}


def prices(config: Any) -> dict[str, float]:
    return {**DEFAULT_PRICES, **dict(config.prices or {})}


def estimate_text(graph: Any, input_size: str | int | None, config: Any, throughput_mb_s: float = 100.0) -> str:
    from .config import parse_bytes

    size = parse_bytes(input_size) if input_size is not None else None
    p = prices(config)
    puts = gets = 0
    tasks = 0
    maps: dict[int, int] = {}
    for stage in graph.stages():
        n = stage.rdd.get_num_partitions()
        if size is not None and stage.dependency is None and not stage.parents:
            n = max(n, -(-size // config.split_size))
        tasks += n
        if stage.dependency is not None:
            maps[stage.dependency.shuffle_id] = n
            puts += n
    for stage in graph.stages():
        for parent_id in stage.parents:
            parent = graph.graph.nodes[parent_id]["stage"]
            gets += maps.get(parent.dependency.shuffle_id, 0) * stage.rdd.get_num_partitions()
    if size is not None:
        gets += size // (8 << 20) + 1
    lines = [f"Estimate: {tasks} tasks, ~{puts} PUT and ~{gets} GET store requests"]
    dollars = puts * p["s3_put"] + gets * p["s3_get"]
    if size is not None:
        gb_s = size / (throughput_mb_s * 1e6) * config.lambda_memory_mb / 1024
        rate = p["lambda_gb_s_arm"] if config.lambda_arch == "arm64" else p["lambda_gb_s_x86"]
        dollars += gb_s * rate + tasks * p["lambda_request"]
        lines.append(f"  executor time ~{gb_s:,.0f} GB-s at {config.lambda_memory_mb} MB "
                     f"(assuming {throughput_mb_s:g} MB/s per executor)")
    lines.append(f"  estimated cost ${dollars:.4f} (prices: us-east-1 list unless overridden)")
    return "\n".join(lines)
