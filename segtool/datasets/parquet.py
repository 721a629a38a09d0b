"""Parquet shards through pyarrow: one row per input, masks and composites as encoded bytes.

Columns (every row, in this order):
  key               the sample key (records.sample_key), shared with the other formats
  input             the path or URL as given
  name              its relative name
  height, width     int32, the input's size (null for an error row)
  model             the model's manifest name
  labels            list<string>, the model's labels; a mask value is an index into it
  category_mask     binary: an 8-bit grey PNG whose pixel values are the category indices
                    (the bytes of the per-file <stem>.category.png)
  categories        list<struct<index int32, label string, pixels int64, fraction double>>:
                    the categories present, with their pixel counts and shares
  confidence_masks  binary (only when asked for): float16 .npy of (C, H, W), label order
  <composite>       binary, one column per composite asked for (blur, replace, cutout, ...):
                    the encoded picture, in the format of the per-file output (PNG, JPEG, WebP)
  error             string: the one-line reason the input failed (then the masks are null)

Rows are written in row groups of about ``row_group_bytes`` (at most ``row_group_rows`` rows) so
a reader can stream a shard and the writer holds at most one row group.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..io.writers import category_png_bytes
from .records import CONFIDENCE_ENCODING, ShardRecord, categories_present, composite_name, confidence_npy

EXTENSION = "parquet"
_ROW_OVERHEAD = 256  # bytes a row costs beyond its binary columns (strings, numbers, list heads)


def schema(confidence_masks: bool, composites: tuple[str, ...]):
    import pyarrow as pa

    category = pa.struct([("index", pa.int32()), ("label", pa.string()), ("pixels", pa.int64()),
                          ("fraction", pa.float64())])
    fields = [("key", pa.string()), ("input", pa.string()), ("name", pa.string()), ("height", pa.int32()),
              ("width", pa.int32()), ("model", pa.string()), ("labels", pa.list_(pa.string())),
              ("category_mask", pa.binary()), ("categories", pa.list_(category))]
    if confidence_masks:
        fields.append(("confidence_masks", pa.binary()))
    fields += [(name, pa.binary()) for name in composites]
    fields.append(("error", pa.string()))
    facts = {"writer": "segtool", "category_mask": "png, 8-bit grey, values are indices into labels",
             "confidence_masks": CONFIDENCE_ENCODING, "composites": list(composites)}
    return pa.schema(fields, metadata={"segtool": json.dumps(facts)})


class ParquetFormat:
    extension = EXTENSION

    def __init__(self, options):
        self.options = options
        self.schema = schema(options.confidence_masks, options.composites)

    def encode(self, record: ShardRecord) -> tuple[dict, int]:
        """(row, its size in bytes, roughly)."""
        height, width = record.size()
        row = {"key": record.key, "input": record.input, "name": record.file_name, "height": height,
               "width": width, "model": record.model, "labels": list(record.labels), "error": record.error}
        if record.ok:
            mask = record.mask()
            row["category_mask"] = category_png_bytes(mask)
            row["categories"] = [vars(share) for share in categories_present(mask, record.labels)]
            if self.options.confidence_masks and record.confidence_masks is not None:
                row["confidence_masks"] = confidence_npy(record.confidence_masks)
            for suffix, data in record.composites.items():
                row[composite_name(suffix)[0]] = bytes(data)
        size = _ROW_OVERHEAD + sum(len(v) for v in row.values() if isinstance(v, (bytes, str)))
        return row, size

    def open(self, path: Path) -> "ParquetShardWriter":
        return ParquetShardWriter(path, self.schema, self.options.row_group_bytes, self.options.row_group_rows)


class ParquetShardWriter:
    """Rows buffered up to a row group's worth, then written; ``tell`` counts both."""

    def __init__(self, path: Path, schema, row_group_bytes: int, row_group_rows: int):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = schema
        self._stream = pa.OSFile(str(path), "wb")
        self._writer = pq.ParquetWriter(self._stream, schema, compression="zstd")
        self._rows: list[dict] = []
        self._buffered = 0
        self._row_group_bytes = row_group_bytes
        self._row_group_rows = row_group_rows

    def write(self, encoded: tuple[dict, int]) -> None:
        row, size = encoded
        self._rows.append(row)
        self._buffered += size
        if self._buffered >= self._row_group_bytes or len(self._rows) >= self._row_group_rows:
            self._flush()

    def tell(self) -> int:
        return self._stream.tell() + self._buffered

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._stream.close()

    def abort(self) -> None:
        # pyarrow closes the file behind us; what was written is thrown away with the temporary
        try:
            self._writer.close()
        finally:
            self._stream.close()

    def _flush(self) -> None:
        if self._rows:
            table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
            self._writer.write_table(table, row_group_size=len(self._rows))
            self._rows, self._buffered = [], 0


def inputs_in(stream) -> Iterator[tuple[str, bool]]:
    """(input, succeeded) of every row of a finished shard (the index rebuilt from it)."""
    import pyarrow.parquet as pq

    table = pq.read_table(stream, columns=["input", "error"])
    for input, error in zip(table.column("input").to_pylist(), table.column("error").to_pylist()):
        yield input, error is None
