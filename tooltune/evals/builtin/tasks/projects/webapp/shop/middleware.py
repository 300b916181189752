"""Wraps every request: tags it with an id and records how long it took."""

import time
import uuid


def with_request_id(dispatch):
    def wrapped(request):
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:12]
        started = time.perf_counter()
        response = dispatch(request)
        response.headers["X-Request-Id"] = request_id
        response.headers["X-Elapsed-Ms"] = f"{(time.perf_counter() - started) * 1000:.1f}"
        return response

    return wrapped
