"""dagrun: Spark-style data jobs in Python, on local processes or AWS Lambda.

>>> import dagrun
>>> with dagrun.Context(executor="inline") as ctx:
...     ctx.parallelize(["a b", "b"]).flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(lambda a, b: a + b).collect()
[('a', 1), ('b', 2)]
"""

from .actions import StatCounter
from .config import Config
from .context import Context
from .errors import FetchFailed, JobAborted, JobFailed
from .lineage import RDD
from .partitioners import portable_hash
from .prefix_sort import key_prefix

__version__ = "0.1.0"

__all__ = ["Context", "RDD", "Config", "JobFailed", "JobAborted", "FetchFailed", "StatCounter", "portable_hash",
           "key_prefix"]
