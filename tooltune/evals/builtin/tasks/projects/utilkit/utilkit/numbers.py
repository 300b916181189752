"""Number helpers."""

from decimal import ROUND_HALF_UP, Decimal


def clamp(value, low, high):
    return max(low, min(value, high))


def percent(part, whole):
    """Share of `whole` that `part` is, in percent (0 when whole is 0)."""
    if whole == 0:
        return 0
    return part * 100 // whole


def round_half_up(value, digits=0):
    """Round like people do on paper: 2.5 -> 3, 0.125 -> 0.13 (digits=2).

    Python's round() uses banker's rounding (round half to even), so round(2.5) == 2.
    Going through Decimal with the string form also avoids binary float surprises.
    """
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))
