"""The DDP batch partition: every rank's share of each global batch, nothing repeated, lengths counted without
advancing the seeded shuffle."""

import pytest
import torch

from medtl.train.distributed import RankBatches, gather_in_order


@pytest.mark.parametrize("count,batch,world", [(16, 8, 2), (17, 8, 2), (19, 8, 2), (21, 8, 4), (7, 4, 2)])
def test_ranks_split_each_global_batch_and_drop_only_a_too_small_last_one(count, batch, world):
    def batches(drop_last=False):
        generator = torch.Generator().manual_seed(3)
        return torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(count), generator=generator),
                                             batch, drop_last)

    reference = [list(b) for b in batches()]
    shares = [list(RankBatches(batches(), r, world)) for r in range(world)]
    kept = [b for b in reference if len(b) >= 2 * world]
    assert all(len(s) == len(kept) == len(RankBatches(batches(), r, world)) for r, s in enumerate(shares))
    for step, global_batch in enumerate(kept):
        parts = [shares[r][step] for r in range(world)]
        assert sorted(i for p in parts for i in p) == sorted(global_batch)  # each item once, on one rank
        assert all(len(p) >= 2 for p in parts)
    sampler = RankBatches(batches(), 0, world)
    len(sampler)
    assert [list(b) for b in sampler.batches] == reference  # len() did not draw from the shuffle


def test_gather_in_order_without_a_process_group_is_the_identity():
    assert gather_in_order([1, 2, 3], 3) == [1, 2, 3]
