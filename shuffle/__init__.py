"""dagrun's shuffle: map outputs as immutable objects in an fsspec store.

Owns the block store and its request counters (``store``), its per-filesystem adapters
(``fsops``) and bounded retries (``retry``), the key layout (``layout``),
the record codec (``codec``), the map-side writer (``writer``), the reduce-side reader
(``reader``) and bounded-memory combine/sort (``spill``).  It imports nothing from
dagrun, scheduler or lambda_executor, and nothing from AWS until an ``s3://`` URL is used.
"""

from shuffle.codec import CODECS, DEFAULT_CODEC, decode_records, default_codec_for, encode_records
from shuffle.errors import ChecksumMismatch, FetchFailed, StoreThrottled, StoreUnavailable
from shuffle.layout import block_key, job_dirs, prefix_of
from shuffle.reader import merge_combiners, read_blocks, sort_records
from shuffle.retry import RetryPolicy
from shuffle.store import BlockStore, RequestCounts, StoredObject
from shuffle.writer import Aggregator, BlockRef, MapStatus, Segment, write_map_output

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "Aggregator",
    "BlockRef",
    "BlockStore",
    "ChecksumMismatch",
    "FetchFailed",
    "MapStatus",
    "RequestCounts",
    "RetryPolicy",
    "Segment",
    "StoreThrottled",
    "StoreUnavailable",
    "StoredObject",
    "block_key",
    "decode_records",
    "default_codec_for",
    "encode_records",
    "job_dirs",
    "merge_combiners",
    "prefix_of",
    "read_blocks",
    "sort_records",
    "write_map_output",
]
