"""Filtering and totals."""


def filter_rows(rows, min_amount=0, exclude_regions=()):
    """Drop rows below `min_amount` and rows from excluded regions."""
    return [r for r in rows if r["amount"] >= min_amount and r["region"] not in exclude_regions]


def totals_by(rows, key):
    """Sum of 'amount' per value of `key`, largest first."""
    totals = {}
    for row in rows:
        totals[row[key]] = totals.get(row[key], 0) + row["amount"]
    ordered = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    return {k: round(v, 2) for k, v in ordered}


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else 0.0
