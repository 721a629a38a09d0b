"""Masks as dataset shards: Parquet, WebDataset tar files and COCO JSON Lines.

The engines build one ShardRecord per input and hand it to a ShardSink; a rerun asks the
ShardIndex which inputs already have a record:

    index = ShardIndex.load(out)                       # once, before the inputs stream
    with ShardSink.open("parquet", out, ShardOptions(composites=("blur",))) as sink:
        for item in index.missing(items):
            sink.add(ShardRecord(str(item.path), model=..., labels=..., category_mask=...))

Each format's module says what its records hold; records.py what they share.
"""
from .formats import KINDS
from .index import DigestSet, ShardIndex
from .records import CONFIDENCE_ENCODING, ShardRecord, image_id, input_digest, sample_key
from .sink import ShardOptions, ShardSink

__all__ = ["CONFIDENCE_ENCODING", "DigestSet", "KINDS", "ShardIndex", "ShardOptions", "ShardRecord", "ShardSink",
           "image_id", "input_digest", "sample_key"]
