"""PySpark's Hadoop-format methods (``hadoopFile``, ``newAPIHadoopRDD``, ``saveAsHadoopFile``,
``saveAsNewAPIHadoopDataset``, ...) for the formats dagrun implements without a JVM, old API
and new: sequence files (``SequenceFileInputFormat``, ``SequenceFileOutputFormat``) and text
(``TextInputFormat``: ``(byte offset, line)`` pairs, or, in the new API, records cut at the
conf's ``textinputformat.record.delimiter``; ``TextOutputFormat``: a line
``key<TAB>value`` per pair, each written as its Writable's ``toString``, a ``None`` side left
out and a pair of two ``None`` not written at all).

State: none.  Policy: a path comes from the call or, for the ``*RDD``/``*Dataset`` methods,
from the Hadoop conf (``mapreduce.input.fileinputformat.inputdir``,
``mapreduce.output.fileoutputformat.outputdir`` or their old ``mapred.*`` names); the key and
value classes given for writing are the file's (a value of another class fails the save, as
in Hadoop); the new API's readers take no partition count, so their splits are the block
size's, as in Spark; compression is the ``compressionCodecClass`` argument or
``mapreduce.output.fileoutputformat.compress.codec`` with ``...compress=true``.  As in Spark,
the ``newAPI...`` methods take ``org.apache.hadoop.mapreduce.lib.*`` formats and the others
``org.apache.hadoop.mapred.*``, the other API's class being a ``ValueError``; a class name
that is no Writable is a ``ValueError`` too.  Any other format, and Java converters, raise
``NotImplementedError`` saying what to use instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagrun.pyspark.rdd import RDD

_FORMATS = {"input": ("SequenceFileInputFormat", "TextInputFormat"),
            "output": ("SequenceFileOutputFormat", "TextOutputFormat")}
_INPUT_DIR = ("mapreduce.input.fileinputformat.inputdir", "mapred.input.dir")
_OUTPUT_DIR = ("mapreduce.output.fileoutputformat.outputdir", "mapred.output.dir")
_OUTPUT_FORMAT = ("mapreduce.job.outputformat.class", "mapred.output.format.class")
_KEY_CLASS = ("mapreduce.job.output.key.class", "mapred.output.key.class")
_VALUE_CLASS = ("mapreduce.job.output.value.class", "mapred.output.value.class")


def _conf(conf: dict | None, names: tuple[str, ...]) -> Any:
    return next((conf[n] for n in names if conf and conf.get(n) is not None), None)


def _new_api(what: str) -> bool:
    """Whether the method (``SparkContext.newAPIHadoopFile``, ``RDD.saveAsNewAPIHadoopDataset``, ...)
    is one of the new Hadoop API's."""
    return "newAPI" in what or "NewAPI" in what


def _format(what: str, format_class: Any, kind: str) -> str:
    """The format's simple name, checked against the API of the method (``newAPI...`` methods take
    ``org.apache.hadoop.mapreduce.lib.*`` formats, the others ``org.apache.hadoop.mapred.*``, as
    in Spark, where the other API's class is an error)."""
    new = _new_api(what)
    mine, theirs = (f"org.apache.hadoop.mapreduce.lib.{kind}.", "org.apache.hadoop.mapred.")[::1 if new else -1]
    name = format_class.rpartition(".")[2] if isinstance(format_class, str) else None
    if name in _FORMATS[kind] and format_class == mine + name:
        return name
    if name in _FORMATS[kind] and format_class == theirs + name:
        raise ValueError(f"{what} takes the {'new' if new else 'old'} Hadoop API's formats ({mine}{name}); "
                         f"{format_class} belongs to the {'old' if new else 'new'} API's methods")
    instead = ("use textFile, sequenceFile, binaryRecords or binaryFiles" if kind == "input"
               else "use saveAsTextFile, saveAsSequenceFile or saveAsPickleFile")
    raise NotImplementedError(f"{what} with {format_class} needs Spark's JVM, which dagrun does not have; dagrun has "
                              f"{mine}{' and '.join(_FORMATS[kind])}; {instead}")


def _no_converters(key_converter: Any, value_converter: Any) -> None:
    if key_converter is not None or value_converter is not None:
        raise NotImplementedError("keyConverter and valueConverter name Java classes, which need Spark's JVM; "
                                  "convert the elements with map() instead")


def read(ctx: Any, what: str, path: Any, input_format_class: str, key_class: Any = None, value_class: Any = None,
         key_converter: Any = None, value_converter: Any = None, conf: dict | None = None) -> Any:
    """The dagrun RDD of ``sc.hadoopFile(...)`` and its siblings."""
    from dagrun.runtime.writables import check_class

    form = _format(what, input_format_class, "input")
    _no_converters(key_converter, value_converter)
    for role, name in (("keyClass", key_class), ("valueClass", value_class)):
        check_class(name, role)
    path = path if path is not None else _conf(conf, _INPUT_DIR)
    if path is None:
        raise ValueError(f"{what} needs the input path in its conf, as {_INPUT_DIR[0]}")
    # the new API's FileInputFormat takes no partition count: splits are the block size's
    minimum = 1 if _new_api(what) else ctx.default_min_partitions
    if form == "TextInputFormat":
        from dagrun.api.rdd import RDD
        from dagrun.graph.file_sources import split_paths
        from dagrun.graph.nodes import TextFileNode

        # only the new API's reader takes the delimiter (PySpark's old-API reader cuts lines anyway)
        delimiter = _conf(conf, ("textinputformat.record.delimiter",)) if _new_api(what) else None
        return RDD(TextFileNode(ctx, split_paths(path), ctx.config.split_size, minimum,
                                dict(ctx.config.storage_options) or None, offsets=True,
                                delimiter=None if delimiter is None else str(delimiter).encode()))
    return ctx.sequence_file(path, min_splits=minimum)


def save(rdd: Any, what: str, path: Any, output_format_class: Any, key_class: Any = None, value_class: Any = None,
         key_converter: Any = None, value_converter: Any = None, conf: dict | None = None,
         compression_codec_class: Any = None) -> None:
    """``rdd.saveAsHadoopFile(...)`` and its siblings, on a dagrun RDD."""
    from dagrun.api.actions import save_sequence_files

    from dagrun.runtime.writables import check_class

    form = _format(what, output_format_class or _conf(conf, _OUTPUT_FORMAT), "output")
    _no_converters(key_converter, value_converter)
    key_class, value_class = key_class or _conf(conf, _KEY_CLASS), value_class or _conf(conf, _VALUE_CLASS)
    for role, name in (("keyClass", key_class), ("valueClass", value_class)):
        check_class(name, role)
    path = path if path is not None else _conf(conf, _OUTPUT_DIR)
    if path is None:
        raise ValueError(f"{what} needs the output path in its conf, as {_OUTPUT_DIR[0]}")
    compressed = str(_conf(conf, ("mapreduce.output.fileoutputformat.compress", "mapred.output.compress"))).lower()
    if compression_codec_class is None and compressed == "true":
        compression_codec_class = _conf(conf, ("mapreduce.output.fileoutputformat.compress.codec",
                                               "mapred.output.compression.codec"))
        compression_codec_class = compression_codec_class or "DefaultCodec"
    if form == "TextOutputFormat":
        rdd.map(_text_line).filter(lambda line: line is not None).save_as_text_file(path, compression_codec_class)
        return
    save_sequence_files(rdd, path, compression_codec_class, key_class, value_class)


def _text_line(pair: Any) -> str | None:
    """Hadoop's TextOutputFormat line of one (key, value) pair."""
    from dagrun.graph.sequence_source import pair_of
    from dagrun.runtime.writables import java_string

    key, value = pair_of(pair)
    if key is None and value is None:
        return None
    if key is None or value is None:
        return java_string(value if key is None else key)
    return f"{java_string(key)}\t{java_string(value)}"


class HadoopInputs:
    """``SparkContext``'s Hadoop-format readers (a base class of it; ``self._ctx`` is its Context)."""

    def hadoopFile(self, path: str, inputFormatClass: str, keyClass: str | None = None,
                   valueClass: str | None = None, keyConverter: str | None = None,
                   valueConverter: str | None = None, conf: dict | None = None, batchSize: int = 0) -> "RDD":
        """``org.apache.hadoop.mapred``'s SequenceFileInputFormat or TextInputFormat (``dagrun.pyspark.hadoop``)."""
        return _wrap(self, read(self._ctx, "SparkContext.hadoopFile", path, inputFormatClass, keyClass, valueClass,
                               keyConverter, valueConverter, conf))

    def newAPIHadoopFile(self, path: str, inputFormatClass: str, keyClass: str | None = None,
                         valueClass: str | None = None, keyConverter: str | None = None,
                         valueConverter: str | None = None, conf: dict | None = None, batchSize: int = 0) -> "RDD":
        """``org.apache.hadoop.mapreduce.lib.input``'s SequenceFileInputFormat or TextInputFormat."""
        return _wrap(self, read(self._ctx, "SparkContext.newAPIHadoopFile", path, inputFormatClass, keyClass, valueClass,
                               keyConverter, valueConverter, conf))

    def hadoopRDD(self, inputFormatClass: str, keyClass: str | None = None, valueClass: str | None = None,
                  keyConverter: str | None = None, valueConverter: str | None = None, conf: dict | None = None,
                  batchSize: int = 0) -> "RDD":
        """``hadoopFile`` with the path in ``conf`` (``mapreduce.input.fileinputformat.inputdir``)."""
        return _wrap(self, read(self._ctx, "SparkContext.hadoopRDD", None, inputFormatClass, keyClass, valueClass,
                               keyConverter, valueConverter, conf))

    def newAPIHadoopRDD(self, inputFormatClass: str, keyClass: str | None = None, valueClass: str | None = None,
                        keyConverter: str | None = None, valueConverter: str | None = None,
                        conf: dict | None = None, batchSize: int = 0) -> "RDD":
        """``newAPIHadoopFile`` with the path in ``conf``."""
        return _wrap(self, read(self._ctx, "SparkContext.newAPIHadoopRDD", None, inputFormatClass, keyClass, valueClass,
                               keyConverter, valueConverter, conf))


def _wrap(sc: Any, rdd: Any) -> Any:
    from dagrun.pyspark.rdd import RDD  # the PySpark RDD module imports this one

    return RDD(rdd, sc)
