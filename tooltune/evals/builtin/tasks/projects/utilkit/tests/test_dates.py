from datetime import date

from utilkit.dates import add_business_days, is_weekend, parse_iso_date


def test_parse_iso_date():
    assert parse_iso_date(" 2024-06-15 ") == date(2024, 6, 15)


def test_weekdays_are_not_weekend():
    assert not is_weekend(date(2024, 6, 10))  # a Monday
    assert not is_weekend(date(2024, 6, 14))  # a Friday


def test_saturday_and_sunday_are_weekend():
    assert is_weekend(date(2024, 6, 15))  # a Saturday
    assert is_weekend(date(2024, 6, 16))  # a Sunday


def test_add_business_days_skips_weekend():
    assert add_business_days(date(2024, 6, 14), 1) == date(2024, 6, 17)
