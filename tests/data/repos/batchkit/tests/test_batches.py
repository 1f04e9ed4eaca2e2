import pytest
from more_itertools import flatten

from batchkit.batches import balanced, batches, moving_sums


def test_batches():
    assert batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    with pytest.raises(ValueError):
        batches([1], 0)


def test_moving_sums():
    assert moving_sums([1, 2, 3, 4], 2) == [3, 5, 7]
    assert moving_sums([1], 3) == []


def test_balanced_keeps_every_item():
    parts = balanced(list(range(7)), 3)
    assert len(parts) == 3 and list(flatten(parts)) == list(range(7))
