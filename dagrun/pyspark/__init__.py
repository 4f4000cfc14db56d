"""PySpark's RDD API on dagrun: change the imports of a PySpark script and run it as it is.

>>> from dagrun.pyspark import SparkContext
>>> sc = SparkContext("inline", "wordcount")
>>> sc.parallelize(["a b", "b"]).flatMap(str.split).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).collect()
[('a', 1), ('b', 2)]
>>> sc.stop()

``SparkContext`` and ``SparkConf`` are in ``context``, ``RDD`` and ``StorageLevel`` in ``rdd``,
``SparkFiles`` in ``files``, ``ResultIterable`` in ``resultiterable``;
the camelCase names are generated from dagrun's snake_case API by ``names``.
"""

from dagrun.api.statcounter import StatCounter
from dagrun.runtime.shared_vars import Accumulator, AccumulatorParam, Broadcast
from dagrun.pyspark.context import SparkConf, SparkContext, StatusTracker
from dagrun.pyspark.files import SparkFiles
from dagrun.pyspark.rdd import RDD, StorageLevel
from dagrun.pyspark.resultiterable import ResultIterable

__all__ = ["SparkContext", "SparkConf", "RDD", "StorageLevel", "Broadcast", "Accumulator", "AccumulatorParam",
           "StatusTracker", "SparkFiles", "ResultIterable", "StatCounter"]
