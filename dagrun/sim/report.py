"""A finished simulation as the projection ``dagrun plan`` prints: JSON and text.

State: none; ``projection`` reads a ``Simulation`` after ``run()``.

Policy: the cost is what the models billed (Lambda GB-s per ms and invocations, S3 requests
by kind, plus the driver's cleanup LIST and DELETE from the arithmetic estimate) at the
configured prices.  "Where the time went" splits the fleet's billed executor-seconds into
start-up, compute, transfer and requests, 503 back-off, and idle (launched but waiting for
work, including the tail of the last stage), and names the ramp: when the fleet reached its
peak.  A rerun is an attempt beyond a task's first that was not a speculative backup.

Promise: plain data (``projection``) and plain text (``text``); nothing is run here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from dagrun.observe.ledger import REQUEST_KINDS, CostRow
from dagrun.sim.run import Simulation


def projection(sim: Simulation, cleanup: CostRow, prices: dict, arch: str) -> dict[str, Any]:
    t, lam, s3 = sim.tally, sim.lam, sim.s3
    requests = Counter(s3.requests)
    requests.update(cleanup.requests)
    total = CostRow("total", invocations=lam.invocations, gb_s=lam.gb_s, requests=requests)
    usd = total.dollars(prices, arch)
    tasks = sum(s.tasks for job in sim.jobs[:len(t.jobs)] for s in job)
    attempts = t.assigned
    peak = max((n for _, n in t.executors_up), default=0)
    reached = next((when for when, n in t.executors_up if n == peak), 0.0)
    seconds = max((j["end"] or sim.env.now for j in t.jobs), default=0.0)
    billed = lam.billed_ms / 1000
    busy = {k: round(v, 1) for k, v in t.busy.items()}
    startup = lam.cold * lam.model.cold_start_s + (lam.invocations - lam.cold) * lam.model.warm_start_s
    busy["start-up"] = round(startup, 1)
    busy["idle"] = round(max(0.0, billed - sum(busy.values())), 1)
    stages = [{"job": job, "stage": stage, "name": sim._stages[stage].name, "tasks": sim._stages[stage].tasks,
               "work": sim._stages[stage].work, "start": round(span[0], 3), "end": round(span[1], 3)}
              for (job, stage), span in sorted(t.stages.items(), key=lambda item: item[1][0])]
    return {
        "simulated": True, "seconds": round(seconds, 3), "cost_usd": round(usd["total"], 4),
        "cost_breakdown_usd": {k: round(v, 6) for k, v in usd.items()}, "failed": sim.failed,
        "tasks": tasks, "attempts": attempts, "tasks_rerun": attempts - t.speculative - tasks,
        "tasks_lost": t.lost_running, "tasks_failed": t.attempts["failed"], "speculative": t.speculative,
        "executors_peak": peak, "fleet_ready_seconds": round(reached, 3), "invocations": lam.invocations,
        "cold_starts": lam.cold, "lambda_429": lam.throttled, "s3_503": s3.slowdowns,
        "s3_gave_up": s3.gave_up, "gb_s": round(lam.gb_s, 1), "executor_seconds": busy,
        "requests": {k: requests.get(k, 0) for k in REQUEST_KINDS},
        "peak_requests_per_s": s3.peak_rates(), "stages": stages,
        "jobs": [{"job": j["job"], "start": round(j["start"], 3), "end": round(j["end"] or seconds, 3)}
                 for j in t.jobs],
        "simulation_wall_seconds": round(sim.wall_seconds, 2),
    }


def text(p: dict[str, Any], fleet: int, memory_mb: int) -> str:
    lines = [f"Simulated on {fleet} Lambda executors ({memory_mb} MB), the real scheduler in virtual time "
             f"({p['simulation_wall_seconds']:.1f} s of wall time):"]
    if p["failed"]:
        lines.append(f"  FAILED: {p['failed']}")
    lines.append(f"  {'job':>3} {'stage':>5} {'tasks':>7} {'work':<6} {'start s':>8} {'end s':>8}  name")
    for s in p["stages"]:
        lines.append(f"  {s['job']:>3} {s['stage']:>5} {s['tasks']:>7,} {s['work']:<6} {s['start']:>8.1f} "
                     f"{s['end']:>8.1f}  {s['name'][:60]}")
    req = ", ".join(f"{v:,} {k.upper()}" for k, v in p["requests"].items() if v)
    hot = sorted(p["peak_requests_per_s"].items(), key=lambda kv: -kv[1])[:3]
    usd = p["cost_breakdown_usd"]
    lines += [
        f"  time: {p['seconds']:,.1f} s; the fleet reached {p['executors_peak']:,} executors at "
        f"{p['fleet_ready_seconds']:.1f} s ({p['invocations']:,} invocations, {p['cold_starts']:,} cold)",
        f"  cost: ${p['cost_usd']:.4f} = compute ${usd['compute']:.4f} ({p['gb_s']:,.0f} GB-s) + invocations "
        f"${usd['invocations']:.4f} + S3 requests ${usd['requests']:.4f} ({req or 'none'})",
        f"  tasks: {p['tasks']:,}, attempts {p['attempts']:,}: {p['tasks_rerun']:,} rerun "
        f"({p['tasks_lost']:,} lost with their executor, {p['tasks_failed']:,} failed), "
        f"{p['speculative']:,} speculative",
        f"  throttles: {p['lambda_429']:,} Lambda 429, {p['s3_503']:,} S3 503 ({p['s3_gave_up']:,} gave up); "
        "busiest prefixes " + ", ".join(f"{k} {v:,}/s" for k, v in hot),
    ]
    spent = p["executor_seconds"]
    whole = sum(spent.values()) or 1.0
    lines.append("  where the executor-seconds went: " + ", ".join(
        f"{k} {v / whole:.0%}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v))
    return "\n".join(lines)
