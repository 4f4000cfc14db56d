"""A small notebook executed with nbclient: a progress display while the job runs, and HTML
reprs of the finished job and its cost."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CELLS = [
    "import dagrun\nctx = dagrun.Context(executor='inline', default_parallelism=3)",
    "ctx.parallelize(range(300), 3).map(lambda x: (x % 7, x)).reduce_by_key(lambda a, b: a + b).count()",
    "ctx.last_job",
    "ctx.last_job.cost",
    "from dagrun.pyspark import SparkContext\nctx.stop()\nsc = SparkContext('inline[2]', 'nb')\n"
    "sc.parallelize(['a b', 'b']).flatMap(str.split).countByValue()",
]


@pytest.mark.timeout(180)
def test_notebook_shows_progress_and_html_reprs(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path / "home"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    outputs = [cell.outputs for cell in nb.cells]
    assert not [o for cell in outputs for o in cell if o.output_type == "error"], outputs
    progress = [o for o in outputs[1] if o.output_type in ("display_data", "update_display_data")]
    assert progress and all('class="dagrun-progress"' in o.data["text/html"] for o in progress)
    assert any("<progress" in o.data["text/html"] for o in progress)
    assert [o.data["text/plain"] for o in outputs[1] if o.output_type == "execute_result"] == ["7"]
    (job,) = [o for o in outputs[2] if o.output_type == "execute_result"]
    assert 'class="dagrun-job"' in job.data["text/html"] and "succeeded" in job.data["text/html"]
    (cost,) = [o for o in outputs[3] if o.output_type == "execute_result"]
    assert 'class="dagrun-cost"' in cost.data["text/html"] and "<table>" in cost.data["text/html"]
    (counts,) = [o for o in outputs[4] if o.output_type == "execute_result"]
    assert "'b': 2" in counts.data["text/plain"]
