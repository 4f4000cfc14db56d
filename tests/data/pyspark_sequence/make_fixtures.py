"""Writes this folder's sequence files with PySpark (run by hand; needs pyspark and Java):

    python tests/data/pyspark_sequence/make_fixtures.py

Each ``<name>.seq`` is the one part file PySpark wrote for the data in ``CASES``, which
tests/unit/test_sequence_files.py reads back.
"""

import glob
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CODECS = {"default": "org.apache.hadoop.io.compress.DefaultCodec", "gzip": "org.apache.hadoop.io.compress.GzipCodec",
          "bzip2": "org.apache.hadoop.io.compress.BZip2Codec"}


def main() -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark import SparkContext

    sc = SparkContext("local[1]", "fixtures")
    conf = sc._jsc.hadoopConfiguration()
    tmp = tempfile.mkdtemp()

    def save(name, write):
        out = os.path.join(tmp, name)
        write(out)
        (part,) = [p for p in sorted(glob.glob(out + "/part-*")) if os.path.getsize(p) > 0]
        shutil.copy(part, os.path.join(HERE, name + ".seq"))

    for name, data in CASES.items():
        save(name, lambda out, data=data: sc.parallelize(data, 1).saveAsSequenceFile(out))
    for short, codec in CODECS.items():
        save(f"codec_{short}", lambda out, codec=codec: sc.parallelize(COMPRESSED, 1).saveAsSequenceFile(out, codec))
    conf.set("io.seqfile.compress.blocksize", "2000")  # Spark block-compresses whenever a codec is given
    save("small_blocks", lambda out: sc.parallelize(COMPRESSED, 1).saveAsSequenceFile(out, CODECS["default"]))
    save("pickled", lambda out: sc.parallelize(PICKLED, 1).saveAsPickleFile(out, 3))
    sc.stop()
    shutil.rmtree(tmp)


CASES = {
    "text_int": [(f"k{i}", i) for i in range(50)],
    "long_double": [(2 ** 40 + i, i / 3) for i in range(20)],
    "bool_bytes": [(i % 2 == 0, bytes([i, 255 - i])) for i in range(20)],
    "null_text": [(None, "v\u00e9" * i) for i in range(10)],
    "text_map": [(f"k{i}", {"a": i, "b": 1.5, 7: "seven"}) for i in range(5)],
}
COMPRESSED = [(i, f"value {i}") for i in range(500)]
PICKLED = [(i, f"v{i}", [i] * (i % 3)) for i in range(100)]

if __name__ == "__main__":
    main()
