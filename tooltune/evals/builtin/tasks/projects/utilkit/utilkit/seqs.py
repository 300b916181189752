"""Sequence helpers."""


def chunked(items, size):
    """Split a list into lists of `size` items; the last one may be shorter."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i : i + size] for i in range(0, len(items) - size + 1, size)]


def dedupe(items):
    """Drop repeated items, keeping the first occurrence and the order."""
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def flatten(nested):
    """One level: [[1, 2], [3]] -> [1, 2, 3]."""
    return [x for inner in nested for x in inner]
