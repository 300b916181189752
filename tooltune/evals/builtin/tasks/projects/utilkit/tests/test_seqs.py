import pytest
from utilkit.seqs import chunked, dedupe, flatten


def test_chunked_even():
    assert chunked([1, 2, 3, 4], 2) == [[1, 2], [3, 4]]


def test_chunked_keeps_the_short_last_chunk():
    assert chunked([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


def test_chunked_bad_size():
    with pytest.raises(ValueError):
        chunked([1], 0)


def test_dedupe_and_flatten():
    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]
    assert flatten([[1, 2], [3]]) == [1, 2, 3]
