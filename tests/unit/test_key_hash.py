"""The dedupe index's key hash is XXH3-64 of the key's UTF-8 bytes: hold dirs keep it across
releases, so a library that changed it would make staged keys invisible to later runs."""

from __future__ import annotations

import polars as pl

from bqhold.tasks.core.key_hash import hash_keys


def test_the_hash_is_xxh3_64_as_its_specification_gives_it():
    assert hash_keys(pl.Series([""])).to_list() == [0x2D06800538D394C2]  # the spec's empty input


def test_keys_are_hashed_as_their_utf8_bytes_and_differ():
    hashes = hash_keys(pl.Series(["é", "e\u0301", "e"]))

    assert hashes.dtype == pl.UInt64 and hashes.n_unique() == 3, "é composed and decomposed are other keys"
