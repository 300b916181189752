"""Turn check results into lines of text."""


def classify(status, elapsed_ms, max_latency_ms):
    """'down' for no answer or 5xx, 'slow' above the latency limit, otherwise 'ok'."""
    if status is None or status >= 500:
        return "down"
    if elapsed_ms > max_latency_ms:
        return "slow"
    return "ok"


def format_result(url, status, elapsed_ms, max_latency_ms):
    state = classify(status, elapsed_ms, max_latency_ms)
    shown = "---" if status is None else str(status)
    return f"{state.upper():<5} {shown} {elapsed_ms:>6}ms  {url}"


def summarize(states):
    """One line such as '3 ok, 1 slow, 0 down'."""
    counts = {name: 0 for name in ("ok", "slow", "down")}
    for state in states:
        counts[state] += 1
    return ", ".join(f"{n} {name}" for name, n in counts.items())
