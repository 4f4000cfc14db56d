"""PySpark's ``SparkFiles``: where the files added with ``addFile`` are, in the driver and in tasks.

>>> from dagrun.pyspark import SparkContext, SparkFiles          # doctest: +SKIP
>>> sc.addFile("lookup.csv")                                      # doctest: +SKIP
>>> sc.parallelize([1]).map(lambda _: open(SparkFiles.get("lookup.csv")).read()).collect()  # doctest: +SKIP
"""

from __future__ import annotations

from dagrun.runtime import user_files


class SparkFiles:
    """Paths of added files on the machine that asks (``dagrun.files`` under PySpark's names)."""

    def __init__(self) -> None:
        raise NotImplementedError("Do not construct SparkFiles objects")

    @classmethod
    def get(cls, filename: str) -> str:
        """The absolute path of a file added with ``SparkContext.addFile``."""
        return user_files.get(filename)

    @classmethod
    def getRootDirectory(cls) -> str:
        """The folder that holds the added files."""
        return user_files.root_directory()
