"""Match a request's method and path to a handler."""

import re

from shop.http import error

_PARAM = re.compile(r"<(\w+)>")


class Router:
    def __init__(self):
        self._routes = []  # (compiled pattern, {method: handler})

    def add(self, method, pattern, handler):
        regex = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", pattern) + "$")
        for existing, handlers in self._routes:
            if existing.pattern == regex.pattern:
                handlers[method] = handler
                return
        self._routes.append((regex, {method: handler}))

    def route(self, method, pattern):
        def decorator(handler):
            self.add(method, pattern, handler)
            return handler

        return decorator

    def dispatch(self, request):
        for regex, handlers in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            handler = handlers.get(request.method)
            if handler is None:
                return error(405, "method not allowed")
            return handler(request, **match.groupdict())
        return error(404, "not found")
