"""``add_file`` of an s3:// URL with the shuffle store on S3 (moto over HTTP): executors fetch the
store's copy once each, and the Context's stop deletes it."""

from __future__ import annotations

import dagrun


def test_a_file_added_from_s3_reaches_executors_through_an_s3_store_and_goes_at_stop(s3):
    url = s3.put_input("conf/weights.json", b'{"w": 7}')
    store = s3.store_url("files")
    with dagrun.Context(executor="local", max_executors=2, store=store,
                        conf={"progress": "off", "ledger": "off", "speculation": False}) as ctx:
        ctx.add_file(url)
        assert ctx.list_files == [url]
        [added] = ctx.added_files.entries
        [key] = added.keys
        assert f"files/{key}" in s3.keys(prefix="files/")

        def weight(x):
            import json

            with open(dagrun.files.get("weights.json")) as f:
                return x * json.load(f)["w"]

        s3.proxy.reset()
        assert ctx.parallelize(range(6), 6).map(weight).collect() == [7 * x for x in range(6)]
        gets = [r for r in s3.proxy.seen() if r.kind == "GET" and r.key == f"files/{key}"]
        assert 1 <= len(gets) <= 2  # once per executor process, not once per task
    assert not s3.keys(prefix="files/")
