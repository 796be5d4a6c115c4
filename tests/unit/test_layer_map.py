"""Which teacher layer each student layer learns from (TinyBERT section 3.2)."""

from __future__ import annotations

import pytest

from tinybert_edge.distillation.layer_map import layer_map
from tinybert_edge.errors import ConfigError


def test_uniform_4_of_12():
    assert layer_map(4, 12) == [3, 6, 9, 12]
    assert layer_map(4, 12, "uniform") == [3, 6, 9, 12]


def test_uniform_3_of_6():
    assert layer_map(3, 6) == [2, 4, 6]


def test_uniform_equal_depth_is_identity():
    assert layer_map(6, 6) == [1, 2, 3, 4, 5, 6]
    assert layer_map(1, 12) == [12]


@pytest.mark.parametrize("student, teacher", [(4, 6), (5, 6), (5, 12), (3, 8), (7, 12), (2, 3)])
def test_uniform_non_divisible(student, teacher):
    mapping = layer_map(student, teacher)
    assert len(mapping) == student
    assert mapping[-1] == teacher
    assert all(a < b for a, b in zip(mapping, mapping[1:]))
    assert all(1 <= x <= teacher for x in mapping)
    # each student layer m stays within half a layer of g(m) = m * N / M
    for m, x in enumerate(mapping, start=1):
        assert abs(x - m * teacher / student) <= 0.5


def test_last():
    assert layer_map(4, 12, "last") == [9, 10, 11, 12]
    assert layer_map(2, 2, "last") == [1, 2]


def test_explicit_list():
    assert layer_map(3, 12, [1, 5, 12]) == [1, 5, 12]
    assert layer_map(2, 6, (2, 6)) == [2, 6]


@pytest.mark.parametrize("mapping, bad", [([0, 6, 12], "[0]"), ([4, 8, 13], "[13]"), ([-1, 2, 3], "[-1]")])
def test_explicit_out_of_range(mapping, bad):
    with pytest.raises(ConfigError) as info:
        layer_map(3, 12, mapping)
    assert bad in str(info.value)
    assert "1..12" in str(info.value)


def test_explicit_wrong_length():
    with pytest.raises(ConfigError) as info:
        layer_map(4, 12, [3, 6, 9])
    assert "3 teacher layers" in str(info.value) and "student has 4" in str(info.value)


@pytest.mark.parametrize("strategy", ["uniform", "last"])
def test_student_deeper_than_teacher(strategy):
    with pytest.raises(ConfigError) as info:
        layer_map(8, 6, strategy)
    assert "8 layers" in str(info.value) and "only 6" in str(info.value)
    assert "explicit layer_map" in str(info.value)


def test_unknown_strategy():
    with pytest.raises(ConfigError) as info:
        layer_map(4, 12, "top")
    assert "'top'" in str(info.value)
    assert "uniform" in str(info.value) and "last" in str(info.value)


@pytest.mark.parametrize("student, teacher", [(0, 12), (4, 0), (-1, 6)])
def test_non_positive_depths(student, teacher):
    with pytest.raises(ConfigError, match="must be positive"):
        layer_map(student, teacher)
