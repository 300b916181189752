"""Read the config and the sales CSV."""

import csv
import json
from datetime import datetime


def load_config(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_rows(path, date_format="%Y-%m-%d"):
    """Each CSV row as a dict with typed values and an 'amount' (qty * unit_price)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            qty = int(raw["qty"])
            price = float(raw["unit_price"])
            rows.append(
                {
                    "date": datetime.strptime(raw["date"], date_format).date(),
                    "region": raw["region"],
                    "product": raw["product"],
                    "qty": qty,
                    "unit_price": price,
                    "amount": round(qty * price, 2),
                }
            )
    return rows
