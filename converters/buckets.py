"""Sequence buckets fitted to a user's texts: the fixed lengths of a TFLite file's `seq_<L>` signatures, chosen so
that the user's inputs carry as little padding as `count` buckets allow.

A fixed-shape signature costs about in proportion to its length (an int8 BERT on one core: ~0.6 ms at 16 tokens,
~1.2 ms at 32, ~2.4 ms at 64), and the runtime runs each text in the smallest bucket that holds it, so the cost of a
set of buckets is the mean padded length of the texts. The best `count` buckets under that cost are an optimal
one-dimensional partition of the sorted lengths, found exactly by dynamic programming; the longest bucket is always
`longest`, so that every text the tokenizer truncates to `longest` still fits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from tinybert_edge.errors import ConfigError
from tinybert_edge.runtime.litert import smallest_bucket


@dataclass(frozen=True)
class BucketFit:
    """Buckets fitted to `texts` token lengths, and what they cost against the lengths that had to stay alone."""

    buckets: tuple[int, ...]
    texts: int
    mean_padded_length: float
    mean_length: float
    # The lengths that had to stay (the longest and any fixed ones), and the mean padded length at those alone.
    required: tuple[int, ...]
    required_mean_padded_length: float

    def to_dict(self) -> dict[str, object]:
        return {"buckets": list(self.buckets), "texts": self.texts,
                "mean_padded_length": round(self.mean_padded_length, 2), "mean_length": round(self.mean_length, 2),
                "required": list(self.required), "required_mean_padded_length": round(self.required_mean_padded_length, 2)}


def mean_padded_length(lengths: Sequence[int], buckets: Sequence[int]) -> float:
    """The mean length the texts run at: each in the smallest bucket that holds it (a text longer than the longest
    bucket is truncated to it)."""
    if not lengths:
        return 0.0
    longest = max(buckets)
    return sum(smallest_bucket(buckets, n) or longest for n in lengths) / len(lengths)


def fit_buckets(lengths: Sequence[int], longest: int, count: int, fixed: Sequence[int] = ()) -> BucketFit:
    """At most `count` sequence buckets (fewer when the texts have fewer distinct lengths) that give `lengths` (token
    counts, special tokens included) the least mean padded length, among those that hold `longest` (the largest) and
    every `fixed` length (e.g. lengths a benchmark or an app already runs at; none may exceed `longest`). The mean
    padded length at the `fixed` buckets alone (else `longest` alone) is reported beside."""
    if count < 1:
        raise ConfigError(f"bucket count {count} is not allowed; allowed: 1 or more")
    if longest < 2:
        raise ConfigError(f"longest bucket {longest} is not allowed; allowed: 2 or more tokens")
    if not lengths:
        raise ConfigError("no texts to fit sequence buckets to; give the texts the model will see (--data)")
    if any(int(b) > longest for b in fixed):
        raise ConfigError(f"fixed buckets {sorted(fixed)} are not allowed with longest bucket {longest}; allowed: "
                          f"lengths of at most {longest} (raise the longest bucket to the largest fixed length)")
    required = sorted({int(b) for b in fixed} | {longest})
    if any(b < 2 for b in required):
        raise ConfigError(f"fixed buckets {sorted(fixed)} are not allowed; allowed: lengths of 2 or more tokens")
    if count < len(required):
        raise ConfigError(f"{count} buckets cannot hold the {len(required)} lengths that must stay ({required}); ask "
                          f"for at least {len(required)}")
    clipped = [min(max(int(n), 2), longest) for n in lengths]
    counts = Counter(clipped)
    # The candidates: a bucket between two observed lengths only adds padding, so the observed lengths, plus the
    # lengths that must stay.
    values = sorted(set(counts) | set(required))
    must = [v in required for v in values]
    prefix_n = [0]
    for v in values:
        prefix_n.append(prefix_n[-1] + counts[v])

    def padded(i: int, j: int) -> int:  # the lengths of values[i..j] run in bucket values[j]
        return (prefix_n[j + 1] - prefix_n[i]) * values[j]

    k = min(count, len(values))
    infinity = float("inf")
    # best[c][j]: least padded tokens for values[0..j] with c buckets, the largest values[j], no required one skipped
    best = [[infinity] * len(values) for _ in range(k + 1)]
    choice = [[-1] * len(values) for _ in range(k + 1)]
    for j in range(len(values)):
        if not any(must[:j]):
            best[1][j] = padded(0, j)
    for c in range(2, k + 1):
        for j in range(c - 1, len(values)):
            for i in range(j - 1, c - 3, -1):  # the previous bucket; none may be skipped that must stay
                cost = best[c - 1][i] + padded(i + 1, j)
                if cost < best[c][j]:
                    best[c][j], choice[c][j] = cost, i
                if must[i]:
                    break
    buckets, j = [], len(values) - 1
    for c in range(k, 0, -1):
        buckets.append(values[j])
        j = choice[c][j]
    chosen = tuple(sorted(buckets))
    before = tuple(required)
    return BucketFit(buckets=chosen, texts=len(lengths), mean_padded_length=mean_padded_length(clipped, chosen),
                     mean_length=sum(clipped) / len(clipped), required=before,
                     required_mean_padded_length=mean_padded_length(clipped, before))


def fit_to_data(model_dir: str, data: object, longest: int, count: int, fixed: Sequence[int] = ()) -> BucketFit:
    """`fit_buckets` on the token lengths of `data` (a dataset of the model's task, aligned to its labels) as the
    model's tokenizer and task encode it, truncated at `longest`."""
    from tinybert_edge.artifacts import Artifact
    from tinybert_edge.models import load_tokenizer

    model = Artifact.open(model_dir)
    encoded = model.task.encode(load_tokenizer(model_dir), data, longest)
    return fit_buckets([len(ids) for ids in encoded.input_ids], longest, count, fixed)
