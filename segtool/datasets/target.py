"""Dataset shards as the unit of work's target (job.py): one record per input, no files of its own.

The engines hand this target to job.process_image / load / finish where they would hand job.FILES:
it settles an input by the shards' index (--skip-existing: done if a complete shard holds its
record), writes its record (masks, composites as encoded bytes) into the open shard, and a
failed input's error record beside the others. Every engine opens its own (the local engine one
per run, each Ray actor one of its own, finished after each of its tasks).
"""
from __future__ import annotations

from typing import Optional

from .. import effects
from .. import io as sio
from ..outputs import ImageOutputs, ItemReport, composite_suffix
from .index import ShardIndex
from .records import ShardRecord
from .sink import ShardOptions, ShardSink


class Shards:
    """Records into ``outputs.out_dir`` as ``outputs.dataset`` shards, for model ``model``."""

    def __init__(self, outputs: ImageOutputs, model: str, *, writing: bool = True):
        self.model = model
        self.index: Optional[ShardIndex] = (ShardIndex.load(outputs.out_dir, outputs.dataset)
                                            if outputs.skip_existing else None)
        options = ShardOptions(target_bytes=outputs.shard_bytes, confidence_masks=outputs.confidence_masks,
                               composites=tuple(outputs.composites))
        self.sink = ShardSink.open(outputs.dataset, outputs.out_dir, options) if writing else None

    def plan(self, item: sio.InputItem, outputs: ImageOutputs) -> dict:
        return {}  # no file of its own: a record in a shard whose name is known when it is written

    def settle(self, item: sio.InputItem, plan: dict, outputs: ImageOutputs) -> Optional[ItemReport]:
        if self.index is not None and str(item.path) in self.index:
            return ItemReport(item.path, skipped=True)
        return None

    def write(self, loaded, result, labels, outputs: ImageOutputs) -> tuple:
        composites = {}
        for name in outputs.composites:
            suffix = composite_suffix(name, loaded.item, outputs)
            picture = effects.render(name, loaded.image, result.confidence_masks, outputs.effect_options,
                                     subject=result.subject_alpha)
            facts = None if name == "alpha" else loaded.facts
            composites[f"{name}{suffix}"] = sio.image_bytes(picture, suffix, facts=facts, name=str(loaded.item.path))
        height, width = loaded.image.shape[:2]
        record = ShardRecord(str(loaded.item.path), height, width, self.model, tuple(labels),
                             category_mask=result.category_mask, confidence_masks=result.confidence_masks,
                             composites=composites, name=loaded.item.name.as_posix())
        return (self.sink.add(record),)

    def failed(self, item: sio.InputItem, error: str) -> None:
        self.sink.add(ShardRecord.failed(str(item.path), error, name=item.name.as_posix(), model=self.model))

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()

    def abort(self) -> None:
        self.sink.abort()
