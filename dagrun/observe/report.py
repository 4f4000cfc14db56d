"""The HTML job report: one self-contained file that opens offline.

State: none; ``render`` turns a job record (``JobInfo.to_record``, or the JSON that
``dagrun.observe.history`` kept) into a page, ``write_report`` writes it.

Policy: everything is inline: CSS in a <style>, the charts as SVG drawn here, a few lines
of optional JS (click a stage to highlight its tasks); no fonts, scripts or images are
fetched.  Every string from the job (names, errors, ids) is HTML-escaped.  The main
elements have stable ids and classes for tests and styling: ``#summary``, ``#dag``
(``.stage-node``, ``.dag-edge``), ``#timeline`` (``.task-bar``, with ``.retry`` on failed,
lost and fetch-failed attempts, ``.speculative`` on backup attempts, ``.rerun`` on later
attempts), ``#ramp`` (``.launch``, ``.throttle``, ``.ramp-limit``), ``#shuffle-table``,
``#cost-table``, ``#executors-table`` and ``.task-table`` per stage (``#stage-N``).

Promise: ``render`` never raises for a record whose lists are empty (a job that failed
before any task ran still gets a page).
"""

from __future__ import annotations

import datetime
import html
import os
import sys
from typing import Any

from shuffle.layout import redact_all

from dagrun.observe.ledger import REQUEST_KINDS, fmt_bytes, gb_s_price

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#4f9a94", "#b8860b", "#d3697a", "#9c755f",
           "#7f7f7f", "#3d5a80"]  # dark enough for white labels
FAILED = {"failed", "lost", "fetch-failed"}
E = html.escape

CSS = """
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}
main{max-width:1360px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
section,header{background:#fff;border:1px solid #e3e5e8;border-radius:6px;padding:12px 16px;margin-top:14px}
.muted{color:#667}.ok{color:#1a7f37}.bad{color:#c62828}.mono{font-family:ui-monospace,Menlo,Consolas,monospace}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}th,td{padding:3px 6px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#fafbfc;font-weight:600}td:first-child,th:first-child{text-align:left}
tr.total td{font-weight:700;border-top:2px solid #ccc}
.legend span{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
svg text{font-size:11px;fill:#333}svg .axis line,svg .axis path{stroke:#bbb}
.stage-node rect{stroke:#333;stroke-width:1;rx:6}.stage-node text{fill:#fff}.stage-node{cursor:pointer}
.dag-edge{fill:none;stroke:#888;stroke-width:1.5}
.task-bar{stroke:#0003;stroke-width:.5}.task-bar.retry{fill:url(#hatch)!important;stroke:#c62828;stroke-width:1.5}
.task-bar.speculative{stroke:#000;stroke-width:1.5;stroke-dasharray:3 2}.task-bar.discarded{opacity:.45}
.task-bar.unfinished{opacity:.35}.marker{font-size:10px;font-weight:700}.marker.retry{fill:#c62828}
.lifetime{stroke:#d0d4da;stroke-width:1}.lifetime.starting{stroke-dasharray:2 2}
.throttle{stroke:#c62828;stroke-width:1.5}.ramp-limit{fill:none;stroke:#999;stroke-dasharray:5 4}
.launch-line{fill:none;stroke:#4e79a7;stroke-width:2}.live-line{fill:none;stroke:#59a14f;stroke-width:2}
.dim .task-bar:not(.hl){opacity:.12}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
"""

JS = """
document.querySelectorAll('.stage-node').forEach(function(n){n.addEventListener('click',function(){
  var s=n.getAttribute('data-stage'),t=document.getElementById('timeline'),on=t.getAttribute('data-hl')!==s;
  t.setAttribute('data-hl',on?s:'');t.classList.toggle('dim',on);
  t.querySelectorAll('.task-bar').forEach(function(b){b.classList.toggle('hl',on&&b.getAttribute('data-stage')===s);});
});});
"""


def write_report(record: dict[str, Any], path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(record))
    return path


def render(record: dict[str, Any]) -> str:
    record = redact_all(record)  # a record from an older version may still hold URL credentials
    stages = record.get("stages", [])
    colors = {s["id"]: PALETTE[i % len(PALETTE)] for i, s in enumerate(stages)}
    cost = record.get("cost") or {}
    ok = record.get("succeeded")
    started = record.get("started") or 0.0
    when = datetime.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S") if started else "?"
    s = record.get("settings", {})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>dagrun job {E(record.get('job_id', '?'))}</title><style>{CSS}</style></head><body><main>",
        f"<header id='summary'><h1>dagrun job <span class='mono'>{E(record.get('job_id', '?'))}</span> "
        f"<span class='{'ok' if ok else 'bad'}'>{'succeeded' if ok else 'failed'}</span></h1>",
        f"<div class='muted'>{E(record.get('description', ''))} &middot; started {when} &middot; "
        f"{cost.get('wall_seconds', 0):.2f} s &middot; {len(stages)} stages &middot; "
        f"{len(record.get('attempts', []))} task attempts &middot; {len(record.get('executors', []))} executors "
        f"({E(str(s.get('executor', '?')))}) &middot; store "
        f"<span class='mono'>{E(record.get('store_url', ''))}</span></div>",
        f"<p class='mono' id='cost-line'>{E(cost.get('line', ''))}</p></header>",
        "<section><h2>Stages</h2>", _legend(stages, colors), _dag(stages, colors, record), "</section>",
        "<section><h2>Task timeline (one row per executor)</h2>",
        "<div class='legend muted'><span>hatched red, \u2715: failed or lost attempt</span><span>dashed outline, S: "
        "speculative attempt</span><span>faded: discarded result or superseded attempt</span>"
        "<span>grey line: executor lifetime "
        "(dotted until it registered)</span><span>click a stage above to highlight its tasks</span></div>",
        _timeline(record, colors), "</section>",
        "<section><h2>Executor launches and the ramp</h2>", _ramp(record), "</section>",
        "<section><h2>Shuffle bytes and store requests per stage</h2>", _shuffle_table(record), "</section>",
        "<section><h2>Cost</h2>", _cost_table(cost), "</section>",
        "<section><h2>Executors</h2>", _executors_table(record), "</section>",
        "<section id='stages'><h2>Tasks by stage</h2>", _task_tables(record, colors), "</section>",
        f"</main><script>{JS}</script></body></html>"]
    return "\n".join(parts)


def _legend(stages: list[dict], colors: dict[int, str]) -> str:
    items = "".join(f"<span><i class='swatch' style='background:{colors[st['id']]}'></i>stage {st['id']}</span>"
                    for st in stages)
    return f"<div class='legend'>{items}</div>"


def _layers(stages: list[dict]) -> dict[int, int]:
    """Longest path from a source: parents are always in an earlier layer."""
    layer: dict[int, int] = {}
    for st in stages:  # the record lists stages in topological order
        layer[st["id"]] = 1 + max((layer.get(p, 0) for p in st["parents"]), default=-1)
    return layer


def _dag(stages: list[dict], colors: dict[int, str], record: dict) -> str:
    if not stages:
        return "<svg id='dag' width='10' height='10'></svg>"
    layer = _layers(stages)
    columns: dict[int, list[dict]] = {}
    for st in stages:
        columns.setdefault(layer[st["id"]], []).append(st)
    bw, bh, gx, gy = 250, 66, 70, 22
    width = len(columns) * (bw + gx) + 20
    height = max(len(c) for c in columns.values()) * (bh + gy) + 20
    pos = {st["id"]: (10 + col * (bw + gx), 10 + row * (bh + gy))
           for col, members in columns.items() for row, st in enumerate(members)}
    written = _per_stage(record, "bytes_written")
    out = [f"<svg id='dag' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}'><defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' "
           "markerWidth='7' markerHeight='7' orient='auto'><path d='M0,0L10,5L0,10z' fill='#888'/></marker></defs>"]
    for st in stages:
        x2, y2 = pos[st["id"]]
        for p in st["parents"]:
            if p in pos:
                x1, y1 = pos[p]
                a, b = (x1 + bw, y1 + bh / 2), (x2, y2 + bh / 2)
                out.append(f"<path class='dag-edge' data-from='{p}' data-to='{st['id']}' marker-end='url(#arrow)' "
                           f"d='M{a[0]},{a[1]} C{a[0] + gx / 2},{a[1]} {b[0] - gx / 2},{b[1]} {b[0] - 2},{b[1]}'/>")
    for st in stages:
        x, y = pos[st["id"]]
        tasks = len({a["partition"] for a in record.get("attempts", []) if a["stage"] == st["id"]}) or st["tasks"]
        extra = f" &middot; writes {fmt_bytes(written.get(st['id'], 0))}" if st["kind"] != "result" else ""
        out.append(f"<g class='stage-node' data-stage='{st['id']}'><title>{E(st['name'])}</title>"
                   f"<rect x='{x}' y='{y}' width='{bw}' height='{bh}' fill='{colors[st['id']]}'/>"
                   f"<text x='{x + 10}' y='{y + 19}' font-weight='700'>Stage {st['id']} &middot; {E(st['kind'])}</text>"
                   f"<text x='{x + 10}' y='{y + 36}'>{tasks} tasks{extra}</text>"
                   f"<text x='{x + 10}' y='{y + 53}'>{E(_clip(st['name'], 38))}</text></g>")
    out.append("</svg>")
    return "".join(out)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _per_stage(record: dict, key: str, committed_only: bool = True) -> dict[int, int]:
    out: dict[int, int] = {}
    for a in record.get("attempts", []):
        if not committed_only or a["outcome"] == "committed":
            out[a["stage"]] = out.get(a["stage"], 0) + (a.get(key) or 0)
    return out


def _span(record: dict) -> tuple[float, float]:
    t0 = record.get("started") or 0.0
    t1 = record.get("finished") or max([t0] + [a["finished"] or t0 for a in record.get("attempts", [])])
    return t0, max(t1, t0 + 1e-3)


def _axis(x0: float, width: float, seconds: float, y: float) -> str:
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
                 if seconds / s <= 12), 7200)
    ticks, t = [], 0.0
    while t <= seconds + 1e-9:
        x = x0 + width * t / seconds
        ticks.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y}' y2='{y + 5}'/>"
                     f"<text x='{x:.1f}' y='{y + 17}' text-anchor='middle'>{t:g}s</text>")
        t = round(t + step, 6)
    return f"<g class='axis'><line x1='{x0}' x2='{x0 + width}' y1='{y}' y2='{y}'/>{''.join(ticks)}</g>"


def _timeline(record: dict, colors: dict[int, str]) -> str:
    t0, t1 = _span(record)
    seconds = t1 - t0
    executors = [e["executor"] for e in record.get("executors", [])]
    for a in record.get("attempts", []):
        if a["executor"] not in executors:
            executors.append(a["executor"])
    rh = max(5, min(20, 700 // max(1, len(executors))))
    left, width = 70, 1180
    height = len(executors) * rh + 40
    row = {e: i for i, e in enumerate(executors)}
    x = lambda t: left + width * (min(max(t, t0), t1) - t0) / seconds  # noqa: E731
    out = [f"<svg id='timeline' xmlns='http://www.w3.org/2000/svg' width='{left + width + 20}' height='{height}'>"
           "<defs><pattern id='hatch' width='6' height='6' patternUnits='userSpaceOnUse' "
           "patternTransform='rotate(45)'><rect width='6' height='6' fill='#f8d7da'/>"
           "<line x1='0' y1='0' x2='0' y2='6' stroke='#c62828' stroke-width='3'/></pattern></defs>"]
    for e in record.get("executors", []):
        y = row[e["executor"]] * rh + rh / 2
        begin, reg = e.get("launched", e.get("registered", t0)), e.get("registered")
        end = e.get("ended", t1)
        out.append(f"<text x='{left - 6}' y='{y + 4}' text-anchor='end'>{E(e['executor'])}</text>")
        if reg is not None and reg > begin:
            out.append(f"<line class='lifetime starting' x1='{x(begin):.1f}' x2='{x(reg):.1f}' y1='{y}' y2='{y}'/>")
        out.append(f"<line class='lifetime' x1='{x(reg or begin):.1f}' x2='{x(end):.1f}' y1='{y}' y2='{y}'/>")
    for a in record.get("attempts", []):
        cls = ["task-bar"]
        if a["outcome"] in FAILED:
            cls.append("retry")
        if a["speculative"]:
            cls.append("speculative")
        elif a["attempt"] > 0:
            cls.append("rerun")
        if a["outcome"] == "discarded":
            cls.append("discarded")
        elif a["outcome"] == "running":  # still running when the job ended: another attempt won
            cls.append("unfinished")
        end = a["finished"] or t1
        bx, bw = x(a["assigned"]), max(2.0, x(end) - x(a["assigned"]))
        y = row[a["executor"]] * rh + 1
        tip = (f"stage {a['stage']} partition {a['partition']} attempt {a['attempt']} on {a['executor']}: "
               f"{end - a['assigned']:.3f} s, {a['outcome']}" + (f" ({a['error']})" if a.get("error") else ""))
        out.append(f"<rect class='{' '.join(cls)}' data-stage='{a['stage']}' data-partition='{a['partition']}' "
                   f"data-attempt='{a['attempt']}' data-outcome='{E(a['outcome'])}' x='{bx:.1f}' y='{y}' "
                   f"width='{bw:.1f}' height='{rh - 2}' fill='{colors.get(a['stage'], '#999')}'>"
                   f"<title>{E(tip)}</title></rect>")
        # glyphs keep a failed or speculative attempt visible when its bar is a sliver
        if "retry" in cls:
            out.append(f"<text class='marker retry' x='{bx + bw + 1:.1f}' y='{y + rh - 3}'>\u2715</text>")
        elif a["speculative"]:
            out.append(f"<text class='marker speculative' x='{bx + bw + 1:.1f}' y='{y + rh - 3}'>S</text>")
    out.append(_axis(left, width, seconds, len(executors) * rh + 6))
    out.append("</svg>")
    return "".join(out)


def _ramp(record: dict) -> str:
    t0, t1 = _span(record)
    seconds = t1 - t0
    s = record.get("settings", {})
    launches = sorted(e["launched"] for e in record.get("executors", []) if t0 <= e.get("launched", -1) <= t1)
    changes = sorted([(e["registered"], 1) for e in record.get("executors", []) if "registered" in e]
                     + [(e["ended"], -1) for e in record.get("executors", []) if "registered" in e and "ended" in e])
    throttles = [ev for ev in record.get("events", []) if ev["what"] == "throttle"]
    top = max(1, len(launches), len(record.get("executors", [])))
    left, width, h = 50, 1180, 220
    x = lambda t: left + width * (min(max(t, t0), t1) - t0) / seconds  # noqa: E731
    y = lambda n: 10 + h - h * n / top  # noqa: E731
    out = [f"<svg id='ramp' xmlns='http://www.w3.org/2000/svg' width='{left + width + 20}' height='{h + 45}'>",
           f"<g class='axis'><line x1='{left}' x2='{left}' y1='10' y2='{h + 10}'/>"
           f"<text x='{left - 6}' y='14' text-anchor='end'>{top}</text>"
           f"<text x='{left - 6}' y='{h + 10}' text-anchor='end'>0</text></g>"]
    initial, slope = s.get("ramp_initial"), s.get("ramp_slope")
    if initial is not None and slope is not None:
        # the launch budget of a fresh ramp: tokens accrue by the integral of initial + slope*t
        pts = []
        for i in range(101):
            t = seconds * i / 100
            pts.append(f"{x(t0 + t):.1f},{y(min(top, max(1.0, initial) + initial * t + slope * t * t / 2)):.1f}")
        out.append(f"<polyline class='ramp-limit' points='{' '.join(pts)}'><title>ramp budget: {initial:g} + "
                   f"{slope:g}*t launches per second</title></polyline>")
    if launches:
        pts = [f"{x(t0):.1f},{y(0):.1f}"]
        for n, t in enumerate(launches, 1):
            pts += [f"{x(t):.1f},{y(n - 1):.1f}", f"{x(t):.1f},{y(n):.1f}"]
        pts.append(f"{x(t1):.1f},{y(len(launches)):.1f}")
        out.append(f"<polyline class='launch-line' points='{' '.join(pts)}'/>")
        out += [f"<circle class='launch' cx='{x(t):.1f}' cy='{y(n):.1f}' r='2.5' fill='#4e79a7'>"
                f"<title>launch {n} at {t - t0:.2f} s</title></circle>" for n, t in enumerate(launches, 1)]
    live, pts = 0, [f"{x(t0):.1f},{y(0):.1f}"]
    for t, d in changes:
        pts.append(f"{x(t):.1f},{y(live):.1f}")
        live += d
        pts.append(f"{x(t):.1f},{y(live):.1f}")
    pts.append(f"{x(t1):.1f},{y(live):.1f}")
    out.append(f"<polyline class='live-line' points='{' '.join(pts)}'/>")
    for ev in throttles:
        tx = x(ev["time"])
        out.append(f"<line class='throttle' x1='{tx:.1f}' x2='{tx:.1f}' y1='10' y2='{h + 10}'>"
                   f"<title>throttled at {ev['time'] - t0:.2f} s: {E(str(ev.get('detail')))}</title></line>")
    out.append(_axis(left, width, seconds, h + 12))
    out.append("</svg><div class='legend muted'><span><i class='swatch' style='background:#4e79a7'></i>executors "
               "launched</span><span><i class='swatch' style='background:#59a14f'></i>executors registered and "
               "alive</span><span>dashed: ramp budget</span><span><i class='swatch' style='background:#c62828'>"
               f"</i>throttle events ({len(throttles)})</span></div>")
    return "".join(out)


def _table(table_id: str, head: list[str], rows: list[list[Any]], total: list[Any] | None = None,
           cls: str = "") -> str:
    th = "".join(f"<th>{E(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    if total:
        body += "<tr class='total'>" + "".join(f"<td>{c}</td>" for c in total) + "</tr>"
    ident = f" id='{table_id}'" if table_id else ""
    return (f"<div class='scroll'><table{ident} class='{cls}'><thead><tr>{th}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _shuffle_table(record: dict) -> str:
    rows = []
    for st in record.get("stages", []):
        attempts = [a for a in record.get("attempts", []) if a["stage"] == st["id"]]
        req: dict[str, int] = {}
        for a in attempts:
            for k, v in a["requests"].items():
                req[k] = req.get(k, 0) + v
        rows.append([f"stage {st['id']} ({E(st['kind'])})", st.get("reduce_partitions") or "",
                     fmt_bytes(sum(a["bytes_written"] for a in attempts if a["outcome"] == "committed")),
                     fmt_bytes(req.get("bytes_in", 0)), fmt_bytes(req.get("bytes_out", 0)),
                     *(req.get(k, 0) for k in REQUEST_KINDS)])
    d = record.get("driver_requests", {})
    rows.append(["driver (discards, cleanup)", "", "", fmt_bytes(d.get("bytes_in", 0)),
                 fmt_bytes(d.get("bytes_out", 0)), *(d.get(k, 0) for k in REQUEST_KINDS)])
    return _table("shuffle-table", ["stage", "partitions written", "shuffle written (committed)", "store bytes read",
                                    "store bytes written", *(k.upper() for k in REQUEST_KINDS)], rows)


def _cost_table(cost: dict) -> str:
    if not cost:
        return "<p class='muted'>no cost data</p>"
    line = lambda r: [E(_clip(r["label"], 48)), r["tasks"], f"{r['gb_s']:.3f}", r["invocations"],  # noqa: E731
                      *(r["requests"].get(k, 0) for k in REQUEST_KINDS),
                      fmt_bytes(r["bytes_in"] + r["bytes_out"]), f"${r['usd']['compute']:.6f}",
                      f"${r['usd']['invocations']:.6f}", f"${r['usd']['requests']:.6f}", f"${r['usd']['total']:.6f}"]
    head = ["", "tasks", "GB-s", "invocations", *(k.upper() for k in REQUEST_KINDS), "moved",
            "compute $", "invocations $", "requests $", "total $"]
    basis = {"billed": "Lambda's billed duration x memory",
             "mixed": "billed duration where Lambda reported it, else measured lifetime x memory"}.get(
        cost["basis"], f"measured executor lifetimes, priced as Lambda {cost['arch']} with {cost['memory_mb']} MB")
    p = cost["prices"]
    note = (f"<p class='muted'>GB-seconds from {E(basis)}. Lambda ${gb_s_price(p, cost['arch']):.10f}/GB-s "
            f"({E(cost['arch'])}), ${p.get('lambda_request', 0) * 1e6:.2f} per million invocations; S3 PUT/LIST "
            f"${p.get('s3_put', 0) * 1000:.4f} and GET ${p.get('s3_get', 0) * 1000:.4f} "
            "per 1,000.</p>")
    return _table("cost-table", head, [line(r) for r in [*cost["rows"], cost["driver"]]], line(cost["total"])) + note


def _executors_table(record: dict) -> str:
    t0 = record.get("started") or 0.0
    rel = lambda t: "" if t is None else f"{t - t0:.2f}"  # noqa: E731
    rows = [[E(e["executor"]), rel(e.get("launched")), rel(e.get("registered")), rel(e.get("ended")),
             E(str(e.get("reason", ""))), e.get("pid", ""), e.get("billed_ms", ""), e.get("memory_mb", ""),
             e.get("max_memory_mb", "")] for e in record.get("executors", [])]
    return _table("executors-table", ["executor", "launched s", "registered s", "ended s", "reason", "pid",
                                      "billed ms", "memory MB", "max memory MB"], rows)


def _task_tables(record: dict, colors: dict[int, str]) -> str:
    out = []
    for st in record.get("stages", []):
        by_part: dict[int, list[dict]] = {}
        for a in record.get("attempts", []):
            if a["stage"] == st["id"]:
                by_part.setdefault(a["partition"], []).append(a)
        rows = []
        for part, attempts in sorted(by_part.items()):
            won = next((a for a in attempts if a["outcome"] == "committed"), attempts[-1])
            took = (won["finished"] - won["assigned"]) if won["finished"] else None
            rows.append([part, len(attempts), E(won["executor"]), "" if took is None else f"{took:.3f}",
                         won["records_read"], fmt_bytes(won["bytes_read"]), won["records_written"],
                         fmt_bytes(won["bytes_written"]), E(", ".join(a["outcome"] for a in attempts))])
        table = _table("", ["partition", "attempts", "executor", "duration s", "records read", "bytes read",
                            "records written", "bytes written", "outcomes"], rows, cls="task-table")
        out.append(f"<details class='stage-tasks' id='stage-{st['id']}'{' open' if len(rows) <= 50 else ''}>"
                   f"<summary><i class='swatch' style='background:{colors[st['id']]}'></i>Stage {st['id']}: "
                   f"{E(st['name'])} ({len(rows)} tasks)</summary>{table}</details>")
    return "".join(out)
