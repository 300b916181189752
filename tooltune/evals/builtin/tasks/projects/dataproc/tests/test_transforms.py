from transforms import filter_rows, mean, totals_by

ROWS = [
    {"region": "north", "amount": 50.0},
    {"region": "south", "amount": 5.0},
    {"region": "north", "amount": 20.0},
    {"region": "internal", "amount": 300.0},
]


def test_filter_rows():
    kept = filter_rows(ROWS, min_amount=10, exclude_regions=["internal"])
    assert [r["amount"] for r in kept] == [50.0, 20.0]


def test_totals_by_region_largest_first():
    assert list(totals_by(ROWS, "region").items()) == [("internal", 300.0), ("north", 70.0), ("south", 5.0)]


def test_mean():
    assert mean([1, 2, 3]) == 2
    assert mean([]) == 0.0
