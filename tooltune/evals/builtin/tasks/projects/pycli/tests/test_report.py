from pingr.report import classify, format_result, summarize
from pingr.units import parse_duration


def test_classify():
    assert classify(200, 100, 800) == "ok"
    assert classify(200, 900, 800) == "slow"
    assert classify(503, 10, 800) == "down"
    assert classify(None, 0, 800) == "down"


def test_format_result():
    assert format_result("https://a.example", 200, 42, 800) == "OK    200     42ms  https://a.example"


def test_summarize():
    assert summarize(["ok", "ok", "down"]) == "2 ok, 0 slow, 1 down"


def test_parse_duration():
    assert parse_duration("250ms") == 250
    assert parse_duration("2s") == 2000
    assert parse_duration("1.5m") == 90_000
    assert parse_duration("3") == 3000
