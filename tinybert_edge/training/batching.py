"""The order in which the training loop visits examples: a seeded shuffle, or length-grouped batches.

Length grouping (what the transformers Trainer calls `group_by_length`): shuffle, cut the order into groups of
`group_batches` batches, sort each group by length (longest first) and cut it into batches, then shuffle the batches.
Every batch then holds examples of nearly one length, so padding each batch to its longest member (dynamic padding)
wastes little compute, while the group size keeps the order random enough for SGD. The longest batch of the epoch goes
first, so that running out of memory shows on the first step rather than mid-epoch.
"""

from __future__ import annotations

from typing import Sequence

import torch

# Batches per group that is sorted by length: the transformers Trainer's LengthGroupedSampler uses 50 too.
GROUP_BATCHES = 50


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that orders epoch `epoch` of a run seeded with `seed` (the same for every process)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def shuffled_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=epoch_generator(seed, epoch)).tolist()


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                           group_batches: int = GROUP_BATCHES) -> list[list[int]]:
    """One epoch of batches (lists of example indices) that covers every example exactly once, each batch cut from a
    length-sorted group of `group_batches` batches; batches are in a seeded random order except that the one holding
    the longest example comes first."""
    if batch_size < 1 or group_batches < 1:
        raise ValueError(f"batch_size ({batch_size}) and group_batches ({group_batches}) must be at least 1")
    generator = epoch_generator(seed, epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    group = batch_size * group_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        members = sorted(order[start : start + group], key=lambda i: lengths[i], reverse=True)
        batches += [members[b : b + batch_size] for b in range(0, len(members), batch_size)]
    if not batches:
        return batches
    shuffled = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    longest = max(range(len(shuffled)), key=lambda b: lengths[shuffled[b][0]])
    shuffled[0], shuffled[longest] = shuffled[longest], shuffled[0]
    return shuffled


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Token positions computed when each batch is padded to its longest member (real tokens plus padding)."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
