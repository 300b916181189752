"""Parse human-friendly durations such as '250ms', '2s' or '1.5m'."""

_FACTORS_MS = {"ms": 1, "s": 1000, "m": 60_000}


def parse_duration(text):
    """Return the duration in milliseconds as an int. A bare number is taken as seconds."""
    text = text.strip().lower()
    for suffix in ("ms", "s", "m"):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            return int(float(number) * _FACTORS_MS[suffix])
    return int(float(text) * 1000)
