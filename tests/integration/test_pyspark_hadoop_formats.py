"""PySpark's Hadoop-format methods on the formats dagrun has: TextInputFormat's (offset, line)
pairs and TextOutputFormat's lines (expected values printed by PySpark 4.3 on the same
input), and the sequence file formats under both APIs."""

from __future__ import annotations

import pytest

from dagrun.pyspark import SparkContext

TEXT_IN = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUT = "org.apache.hadoop.mapred.TextOutputFormat"
SEQ_IN = "org.apache.hadoop.mapreduce.lib.input.SequenceFileInputFormat"
SEQ_OUT = "org.apache.hadoop.mapreduce.lib.output.SequenceFileOutputFormat"


@pytest.fixture(scope="module")
def sc():
    with SparkContext("inline[2]", "hadoop-formats") as sc:
        yield sc


def test_text_input_keys_are_byte_offsets(sc, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes(b"ab\r\ncd\n\nxyz\rlast")
    rdd = sc.hadoopFile(str(path), TEXT_IN, "org.apache.hadoop.io.LongWritable", "org.apache.hadoop.io.Text")
    assert rdd.glom().collect() == [[(0, "ab"), (4, "cd"), (7, ""), (8, "xyz")], [(12, "last")]]
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfbom\nsecond\n")  # the mark is counted, and left out of the line
    assert sc.newAPIHadoopFile(str(bom), "org.apache.hadoop.mapreduce.lib.input.TextInputFormat",
                               "org.apache.hadoop.io.LongWritable", "org.apache.hadoop.io.Text").collect() == [
        (0, "bom"), (7, "second")]


def test_text_input_offsets_across_splits(sc, tmp_path):
    lines = [f"{i} " + "x" * (i % 17) for i in range(40000)]
    path = tmp_path / "many.txt"
    path.write_text("\n".join(lines) + "\n")
    got = sc.hadoopRDD(TEXT_IN, conf={"mapreduce.input.fileinputformat.inputdir": str(path)}).collect()
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    assert got == list(zip(offsets, lines))


def test_text_output_writes_java_strings(sc, tmp_path):
    out = str(tmp_path / "out")
    pairs = [(1, 0.5), ("k", 1e-5), (True, None), (None, 1e7), (None, None), (2 ** 40, b"ab"), (3.25, "x"),
             ("m", {"a": 1})]
    sc.parallelize(pairs, 1).saveAsHadoopFile(out, TEXT_OUT)
    with open(f"{out}/part-00000") as f:
        assert f.read() == "1\t0.5\nk\t1.0E-5\ntrue\n1.0E7\n1099511627776\t61 62\n3.25\tx\nm\t{a=1}\n"


def test_sequence_formats_through_the_dataset_methods(sc, tmp_path):
    out = str(tmp_path / "seq")
    sc.parallelize([(1, ""), (1, "a"), (3, "x")]).saveAsNewAPIHadoopDataset(conf={
        "mapreduce.job.outputformat.class": SEQ_OUT, "mapreduce.output.fileoutputformat.outputdir": out,
        "mapreduce.output.fileoutputformat.compress": "true",
        "mapreduce.output.fileoutputformat.compress.codec": "org.apache.hadoop.io.compress.BZip2Codec"})
    loaded = sc.newAPIHadoopRDD(SEQ_IN, "org.apache.hadoop.io.IntWritable", "org.apache.hadoop.io.Text",
                                conf={"mapreduce.input.fileinputformat.inputdir": out})
    assert sorted(loaded.collect()) == [(1, ""), (1, "a"), (3, "x")]


def test_other_formats_and_converters_say_what_to_use(sc, tmp_path):
    with pytest.raises(NotImplementedError, match="AvroKeyInputFormat needs Spark's JVM.*SequenceFileInputFormat"):
        sc.hadoopFile("x", "org.apache.avro.mapred.AvroKeyInputFormat")
    with pytest.raises(NotImplementedError, match="keyConverter and valueConverter"):
        sc.newAPIHadoopFile(str(tmp_path), SEQ_IN, keyConverter="com.example.Conv")
    with pytest.raises(ValueError, match="needs the output path in its conf"):
        sc.parallelize([(1, 2)]).saveAsHadoopDataset(conf={"mapred.output.format.class": TEXT_OUT})


# ---- Spark's python/pyspark/tests/test_readwrite.py, the cases that need no JVM-made data

OLD_SEQ_IN = "org.apache.hadoop.mapred.SequenceFileInputFormat"
OLD_SEQ_OUT = "org.apache.hadoop.mapred.SequenceFileOutputFormat"
INT, TEXT, MAP = ("org.apache.hadoop.io." + n for n in ("IntWritable", "Text", "MapWritable"))


def test_each_api_refuses_the_other_apis_formats(sc, tmp_path):
    with pytest.raises(ValueError, match="old Hadoop API's formats"):
        sc.hadoopFile(str(tmp_path), SEQ_IN, INT, TEXT)
    with pytest.raises(ValueError, match="new Hadoop API's formats"):
        sc.newAPIHadoopFile(str(tmp_path), OLD_SEQ_IN, INT, TEXT)
    rdd = sc.parallelize(range(1, 4)).map(lambda x: (x, "a" * x))
    with pytest.raises(ValueError, match="old Hadoop API's formats"):
        rdd.saveAsHadoopFile(str(tmp_path / "a"), SEQ_OUT)
    with pytest.raises(ValueError, match="new Hadoop API's formats"):
        rdd.saveAsNewAPIHadoopFile(str(tmp_path / "b"), OLD_SEQ_OUT)


def test_bad_classes_and_formats(sc, tmp_path):
    with pytest.raises(ValueError, match="NotValidWritable' is not a Writable class"):
        sc.sequenceFile(str(tmp_path), "org.apache.hadoop.io.NotValidWritable", TEXT)
    with pytest.raises(NotImplementedError):
        sc.hadoopFile(str(tmp_path), "org.apache.hadoop.mapred.NotValidInputFormat", INT, TEXT)
    with pytest.raises(NotImplementedError):
        sc.newAPIHadoopFile(str(tmp_path), "org.apache.hadoop.mapreduce.lib.input.NotValidInputFormat", INT, TEXT)
    rdd = sc.parallelize(range(1, 4)).map(lambda x: (x, "a" * x))
    with pytest.raises(NotImplementedError):
        rdd.saveAsHadoopFile(str(tmp_path / "c"), "org.apache.hadoop.mapred.NotValidOutputFormat")


def test_old_api_round_trip_of_maps(sc, tmp_path):
    dict_data = [(1, {}), (1, {"row1": 1.0}), (2, {"row2": 2.0})]
    sc.parallelize(dict_data).saveAsHadoopFile(str(tmp_path / "oldhadoop"), OLD_SEQ_OUT, INT, MAP)
    assert sorted(sc.hadoopFile(str(tmp_path / "oldhadoop"), OLD_SEQ_IN, INT, MAP).collect(),
                  key=repr) == sorted(dict_data, key=repr)
    conf = {"mapred.output.format.class": OLD_SEQ_OUT, "mapreduce.job.output.key.class": INT,
            "mapreduce.job.output.value.class": MAP,
            "mapreduce.output.fileoutputformat.outputdir": str(tmp_path / "olddataset")}
    sc.parallelize(dict_data).saveAsHadoopDataset(conf)
    got = sc.hadoopRDD(OLD_SEQ_IN, INT, MAP,
                       conf={"mapreduce.input.fileinputformat.inputdir": str(tmp_path / "olddataset")})
    assert sorted(got.collect(), key=repr) == sorted(dict_data, key=repr)


def test_reserialization(sc, tmp_path):
    data = list(zip(range(1, 5), range(1001, 1005)))
    rdd = sc.parallelize(range(1, 5)).zip(sc.parallelize(range(1001, 1005)))
    rdd.saveAsSequenceFile(str(tmp_path / "sequence"))
    rdd.saveAsHadoopFile(str(tmp_path / "hadoop"), OLD_SEQ_OUT)
    rdd.saveAsNewAPIHadoopFile(str(tmp_path / "newhadoop"), SEQ_OUT)
    for fmt, name in ((OLD_SEQ_OUT, "dataset"), (SEQ_OUT, "newdataset")):
        conf = {"mapreduce.job.output.key.class": INT, "mapreduce.job.output.value.class": INT,
                "mapreduce.output.fileoutputformat.outputdir": str(tmp_path / name),
                ("mapred.output.format.class" if fmt == OLD_SEQ_OUT else "mapreduce.job.outputformat.class"): fmt}
        (rdd.saveAsHadoopDataset if fmt == OLD_SEQ_OUT else rdd.saveAsNewAPIHadoopDataset)(conf)
    for name in ("sequence", "hadoop", "newhadoop", "dataset", "newdataset"):
        assert sorted(sc.sequenceFile(str(tmp_path / name)).collect()) == data


def test_malformed_rdd_is_refused(sc, tmp_path):
    for data in ([[(1, "a")], [(2, "aa")]], [[1, "a"], [2, "b"]]):  # lists are not pairs, as in PySpark
        with pytest.raises(Exception, match="hold \\(key, value\\) pairs"):
            sc.parallelize(data, len(data)).saveAsSequenceFile(str(tmp_path / f"m{len(data[0])}"))


def test_hello_through_both_apis(sc, tmp_path):
    (tmp_path / "hello.txt").write_text("Hello World!\n")
    conf = {"mapreduce.input.fileinputformat.inputdir": str(tmp_path / "hello.txt")}
    long = "org.apache.hadoop.io.LongWritable"
    assert sc.hadoopRDD(TEXT_IN, long, TEXT, conf=conf).collect() == [(0, "Hello World!")]
    new_text = "org.apache.hadoop.mapreduce.lib.input.TextInputFormat"
    assert sc.newAPIHadoopRDD(new_text, long, TEXT, conf=conf).collect() == [(0, "Hello World!")]


def test_record_delimiter_in_the_new_api_only(sc, tmp_path):
    # PySpark 4.3: the new API cuts at the conf's delimiter and keeps the \r; the old one cuts lines
    path = tmp_path / "lines.txt"
    path.write_bytes(b"ab\r\ncd\n\nxyz\rlast")
    conf = {"textinputformat.record.delimiter": "\n"}
    new = sc.newAPIHadoopFile(str(path), "org.apache.hadoop.mapreduce.lib.input.TextInputFormat",
                              "org.apache.hadoop.io.LongWritable", TEXT, conf=conf)
    assert new.collect() == [(0, "ab\r"), (4, "cd"), (7, ""), (8, "xyz\rlast")]
    assert new.getNumPartitions() == 1  # the new API takes no partition count: one block, one split
    old = sc.hadoopFile(str(path), TEXT_IN, "org.apache.hadoop.io.LongWritable", TEXT, conf=conf)
    assert old.collect() == [(0, "ab"), (4, "cd"), (7, ""), (8, "xyz"), (12, "last")]
    paragraphs = sc.newAPIHadoopFile(str(path), "org.apache.hadoop.mapreduce.lib.input.TextInputFormat",
                                     conf={"textinputformat.record.delimiter": "\n\n"})
    assert paragraphs.values().collect() == ["ab\r\ncd", "xyz\rlast"]
    assert paragraphs.count() == 2
