"""Shards are disjoint and cover every key."""

import pytest

from medtl.errors import InputError
from medtl.predict.items import parse_shard, shard_of


def test_shards_are_disjoint_and_cover_every_key():
    keys = [f"key{i}" for i in range(500)]
    parts = [{k for k in keys if shard_of(k, 4) == s} for s in range(1, 5)]
    assert sum(len(p) for p in parts) == len(keys) and set().union(*parts) == set(keys)
    assert all(len(p) > 50 for p in parts)  # roughly balanced
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (1, 1)
    for bad in ("0/4", "5/4", "two/4", "1-4"):
        with pytest.raises(InputError, match="shard"):
            parse_shard(bad)
