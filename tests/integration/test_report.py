"""The HTML job report: written by ``job.report(path)`` and by ``dagrun report --last`` in a new
process, self-contained, and rendered by headless Chromium with the DAG, the timeline bars
(retried and speculative attempts marked), the ramp chart and the cost table in the DOM."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

import dagrun

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing; install it with: apt-get install chromium (Debian package 'chromium')")


class Elements(HTMLParser):
    """Every element's tag, id and classes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None, set[str]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.found.append((tag, a.get("id"), set((a.get("class") or "").split())))

    def ids(self) -> set[str]:
        return {i for _, i, _ in self.found if i}

    def count(self, *classes: str) -> int:
        return sum(1 for _, _, c in self.found if set(classes) <= c)


def _parse(text: str) -> Elements:
    parser = Elements()
    parser.feed(text)
    return parser


def _chromium(url: str, profile: str, *extra: str) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--window-size=1400,2000", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def faulty_job():
    """A three-stage job with one failed-then-retried task and one straggler with a backup."""
    faults = [{"kind": "fail", "stage": 0, "partition": 2},
              {"kind": "delay", "stage": 1, "partition": 1, "seconds": 2.0}]
    conf = {"progress": "off", "faults": faults, "speculation_multiplier": 1.5}
    with dagrun.Context(executor="local", max_executors=2, conf=conf) as ctx:
        pairs = ctx.parallelize([(i % 13, i) for i in range(2000)], 6)
        result = (pairs.reduce_by_key(lambda a, b: a + b, 8).map(lambda kv: (kv[0] % 3, kv[1]))
                  .group_by_key(3).map_values(sum).collect())
        assert dict(result) == {k: sum(i for i in range(2000) if (i % 13) % 3 == k) for k in range(3)}
        yield ctx.last_job


def test_report_is_self_contained_and_complete(faulty_job, tmp_path):
    path = faulty_job.report(str(tmp_path / "job.html"))
    text = open(path, encoding="utf-8").read()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the report must not fetch anything"
    assert "@import" not in text and "url(http" not in text
    page = _parse(text)
    assert {"summary", "dag", "timeline", "ramp", "cost-table", "shuffle-table", "executors-table"} <= page.ids()
    assert page.count("stage-node") == len(faulty_job.stages) == 3
    assert page.count("dag-edge") == 2
    assert page.count("task-bar") == len(faulty_job.attempts)
    assert page.count("task-bar", "retry") == sum(a.outcome in ("failed", "lost", "fetch-failed")
                                                  for a in faulty_job.attempts) >= 1
    assert page.count("task-bar", "speculative") == sum(a.speculative for a in faulty_job.attempts) >= 1
    assert page.count("launch") == sum(1 for e in faulty_job.executors if "launched" in e)
    assert page.count("task-table") == 3
    assert html.escape(str(faulty_job.cost)) in text  # the one-line ledger heads the page


@needs_chromium
def test_report_renders_in_headless_chromium(faulty_job, tmp_path):
    path = faulty_job.report(str(tmp_path / "job.html"))
    dom = _chromium(f"file://{path}", str(tmp_path / "profile"), "--dump-dom")
    page = _parse(dom)
    assert {"dag", "timeline", "ramp", "cost-table"} <= page.ids()
    assert page.count("stage-node") == 3
    assert page.count("task-bar") == len(faulty_job.attempts)
    assert page.count("task-bar", "retry") >= 1 and page.count("task-bar", "speculative") >= 1
    cost_rows = re.search(r'<table id="cost-table".*?</table>', dom, re.S).group(0)
    assert cost_rows.count("<tr") == 1 + len(faulty_job.stages) + 2  # head, stages, driver, total
    shot = tmp_path / "report.png"
    _chromium(f"file://{path}", str(tmp_path / "profile2"), f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few KB


def test_dagrun_report_last_from_a_new_process(faulty_job, tmp_path):
    out = tmp_path / "last.html"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "dagrun.cli", "report", "--last", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    text = out.read_text(encoding="utf-8")
    assert faulty_job.job_id in text and 'id="cost-table"' in text.replace("'", '"')
