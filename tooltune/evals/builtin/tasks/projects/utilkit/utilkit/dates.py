"""Date helpers."""

from datetime import date, timedelta


def parse_iso_date(text):
    """'2024-06-15' -> date(2024, 6, 15)."""
    year, month, day = (int(part) for part in text.strip().split("-"))
    return date(year, month, day)


def is_weekend(day):
    """True on Saturday and Sunday."""
    return day.weekday() > 5


def add_business_days(start, days):
    """The date `days` working days (Mon-Fri) after `start`."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current
