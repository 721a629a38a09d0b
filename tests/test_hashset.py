"""The compact hash set behind the ledger's cache, and the ledger's cache staying small."""
from __future__ import annotations

import json
import os

import numpy as np

from segtool.hashset import MIN_FRESH, HashSet, key_of
from segtool.io import ledger


def test_members_survive_merges_and_strangers_stay_out():
    keys = np.random.default_rng(3).integers(0, 2**63, 5 * MIN_FRESH, dtype=np.uint64).tolist()
    members = HashSet(keys[:MIN_FRESH])
    for key in keys[MIN_FRESH : 4 * MIN_FRESH]:
        members.add(key)
        members.add(key)  # again: counted once
    assert len(members) == 4 * MIN_FRESH
    assert all(key in members for key in keys[: 4 * MIN_FRESH])
    assert not any(key in members for key in keys[4 * MIN_FRESH :])
    assert members.nbytes() < 12 * len(members) + 64 * MIN_FRESH


def test_keys_tell_names_and_fingerprints_apart():
    name = os.fsdecode(b"caf\xe9 \xff.png")  # undecodable bytes become surrogates
    keys = {key_of(name, 1, 2, 3), key_of(name, 1, 2, 4), key_of(name + "x", 1, 2, 3),
            key_of(name, 12, 3), key_of(name), key_of("a", 2**64 - 1, -5, 0)}
    assert len(keys) == 6 and all(0 <= k < 2**64 for k in keys)
    assert key_of(name, 1, 2, 3) == key_of(name, 1, 2, 3)


def test_ledger_cache_is_eight_bytes_an_entry(tmp_path):
    entries = 3 * MIN_FRESH
    lines = [json.dumps([f"img{i}.png", i, i, i]) for i in range(entries)]
    (tmp_path / ledger.LEDGER_NAME).write_text("\n" + "\n\n".join(lines) + "\n")
    cache = ledger._entries(os.path.realpath(tmp_path))
    try:
        assert len(cache) == entries and cache.nbytes() == 8 * entries
    finally:
        ledger._known.pop(os.path.realpath(tmp_path), None)


def test_a_file_segtool_wrote_is_recognised_after_the_cache_is_dropped(tmp_path):
    (tmp_path / "finished").write_bytes(b"mask")
    ledger.record_written(tmp_path / "finished", tmp_path / "out.png")
    (tmp_path / "user.png").write_bytes(b"photo")
    ledger._known.clear()  # another process: only the ledger on disk
    assert ledger.written_by_segtool(tmp_path / "out.png")
    assert not ledger.may_replace(tmp_path / "user.png")
    (tmp_path / "out.png").write_bytes(b"edited")  # changed since: no longer segtool's
    assert not ledger.may_replace(tmp_path / "out.png")
