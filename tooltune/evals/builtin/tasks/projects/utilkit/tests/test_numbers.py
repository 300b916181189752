from utilkit.numbers import clamp, percent, round_half_up


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-3, 0, 10) == 0
    assert clamp(99, 0, 10) == 10


def test_percent_whole_numbers():
    assert percent(1, 4) == 25
    assert percent(3, 0) == 0


def test_percent_keeps_fractions():
    assert percent(1, 8) == 12.5


def test_round_half_up():
    assert round_half_up(2.5) == 3
    assert round_half_up(0.125, 2) == 0.13
