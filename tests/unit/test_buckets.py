"""Sequence buckets fitted to a user's token lengths (converters.buckets): the least mean padded length that `count`
buckets allow, the longest bucket always the one given."""

from __future__ import annotations

import itertools
import random

import pytest

from tinybert_edge.converters.buckets import fit_buckets, mean_padded_length
from tinybert_edge.errors import ConfigError


def _brute_force(lengths: list[int], longest: int, count: int, fixed: tuple[int, ...] = ()) -> float:
    required = {*fixed, longest}
    candidates = sorted(set(range(2, longest)) - required)
    best = float("inf")
    for k in range(0, count - len(required) + 1):
        for chosen in itertools.combinations(candidates, k):
            best = min(best, mean_padded_length(lengths, (*chosen, *required)))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_the_fit_is_the_least_padding_any_choice_of_buckets_gives(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(2, 30) for _ in range(rng.randint(5, 60))]
    for count, fixed in ((1, ()), (2, ()), (3, ()), (3, (12,)), (4, (8, 20))):
        fit = fit_buckets(lengths, 32, count, fixed)
        assert len(fit.buckets) <= count and fit.buckets[-1] == 32 and set(fixed) <= set(fit.buckets)
        assert fit.mean_padded_length == pytest.approx(mean_padded_length(lengths, fit.buckets))
        assert fit.mean_padded_length == pytest.approx(_brute_force(lengths, 32, count, fixed))
        assert fit.required == tuple(sorted({*fixed, 32}))
        assert fit.required_mean_padded_length == pytest.approx(mean_padded_length(lengths, fit.required))


def test_enough_buckets_give_every_length_its_own_and_no_padding():
    fit = fit_buckets([5, 9, 9, 17], 64, 8)
    assert fit.buckets == (5, 9, 17, 64)
    assert fit.mean_padded_length == fit.mean_length == 10.0
    assert fit.required_mean_padded_length == 64.0
    assert fit.to_dict()["required"] == [64]
    # a length that must stay (one a benchmark or an app runs at) is kept even where no text needs it
    assert fit_buckets([5, 9, 9, 17], 64, 8, fixed=(32,)).buckets == (5, 9, 17, 32, 64)


def test_lengths_past_the_longest_bucket_are_truncated_to_it():
    fit = fit_buckets([10, 200, 300], 128, 2)
    assert fit.buckets == (10, 128) and fit.mean_padded_length == pytest.approx((10 + 128 + 128) / 3)
    assert mean_padded_length([500], (64, 128)) == 128


@pytest.mark.parametrize("lengths, longest, count, message", [
    ([], 128, 4, "--data"), ([10], 128, 0, "bucket count 0"), ([10], 1, 2, "longest bucket 1")])
def test_bad_requests_are_refused_naming_the_fix(lengths, longest, count, message):
    with pytest.raises(ConfigError, match=message):
        fit_buckets(lengths, longest, count)


def test_fewer_buckets_than_the_lengths_that_must_stay_are_refused():
    with pytest.raises(ConfigError, match=r"2 buckets cannot hold the 3 lengths that must stay \(\[16, 64, 128\]\); "
                                          r"ask for at least 3"):
        fit_buckets([10, 20], 128, 2, fixed=(16, 64))


def test_a_fixed_length_past_the_longest_bucket_is_refused():
    with pytest.raises(ConfigError, match=r"fixed buckets \[64, 256\] are not allowed with longest bucket 128"):
        fit_buckets([10, 20], 128, 4, fixed=(64, 256))
