"""Data-parallel training of one fold over several processes (``torchrun``), with exact evaluation.

* The process group comes from ``torchrun``'s environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``): NCCL on GPUs, gloo on CPUs.
* ``train.batch_size`` is the **global** batch: each of the W processes takes every W-th
  item of each global batch (the same items a single process would use, in the same
  order), and DDP averages the gradients, so one step equals the single-process step
  (with SyncBatchNorm, the batch statistics too). The learning rate needs no scaling.
* Evaluation partitions the cases (process r predicts cases r, r+W, ...) and gathers the
  outputs by index: every case is predicted exactly once (a padded sampler would repeat
  cases and bias AUC and Dice).
* Only rank 0 writes files.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the process that writes files and reports."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_world() -> int:
    """Processes on this machine (``torchrun``'s ``LOCAL_WORLD_SIZE``): they share its cores."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if active() else 1


def sync_batchnorm(config, device: torch.device) -> bool:
    """``train.sync_bn``, by default on for segmentation (small per-process batches of large images).

    PyTorch's SyncBatchNorm runs on GPUs only: CPU processes (gloo) each compute BatchNorm
    statistics over their own share of the batch, and asking for ``sync_bn`` there is an error.
    """
    from ..errors import ConfigError

    if device.type != "cuda":
        if config.train.sync_bn:
            raise ConfigError("train.sync_bn needs GPUs (PyTorch's SyncBatchNorm is CUDA-only); on CPU processes "
                              "each rank's BatchNorm uses its own share of the batch: set train.sync_bn: false")
        return False
    if config.train.sync_bn is not None:
        return config.train.sync_bn
    from ..tasks import task_of

    return task_of(config).uses_mask  # segmentation, or multitask with a segmentation task


def wrap(model: torch.nn.Module, device: torch.device, some_heads_may_idle: bool = False) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the ranks at every step).

    ``some_heads_may_idle``: a multitask head without a target in a batch gets no gradient.
    """
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=some_heads_may_idle)


def init_from_environment() -> None:
    """Join the process group ``torchrun`` describes (once); NCCL when this process has a GPU, else gloo."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    from datetime import timedelta

    # rank 0 alone prepares the run and trains source stages while the others wait: a long timeout
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(hours=12))


def local_device(device: torch.device) -> torch.device:
    """On GPUs each process uses the GPU of its local rank."""
    if device.type == "cuda" and active():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


class RankBatches(torch.utils.data.Sampler):
    """This rank's part of each global batch of ``batches`` (a batch sampler): items ``rank::world``.

    A global batch too small to give every rank two items (only the epoch's last can be)
    is left out, so that no rank trains BatchNorm on a single item or has nothing to do
    while the others wait for it; those items come up in the next epoch's shuffle.
    """

    def __init__(self, batches: torch.utils.data.Sampler, rank_: int, world_: int):
        self.batches, self.rank, self.world = batches, rank_, world_

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            if len(batch) >= 2 * self.world:
                yield list(batch)[self.rank::self.world]

    def __len__(self) -> int:
        # counted, not drawn: drawing would advance the seeded shuffle
        total, size = len(self.batches.sampler), self.batches.batch_size
        last = 0 if self.batches.drop_last else total % size
        return len(self.batches) - (1 if 0 < last < 2 * self.world else 0)


def gather_in_order(local: Sequence[Any], count: int) -> list[Any]:
    """Outputs computed by every rank for its indices ``rank::world`` of ``count`` items, back in item order."""
    if not active():
        return list(local)
    parts: list = [None] * world()
    dist.all_gather_object(parts, list(local))
    out: list = [None] * count
    for r, part in enumerate(parts):
        out[r::world()] = part
    return out


def average_scalar(value: float) -> float:
    """The mean of a number over the ranks (e.g. the epoch's training loss)."""
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world()


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if active():
        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Leave the process group together (a rank that exits while another still talks to it can abort)."""
    if active():
        dist.barrier()
        dist.destroy_process_group()
