"""Request and response objects."""

import json
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    query: dict = field(default_factory=dict)
    body: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)


@dataclass
class Response:
    status: int = 200
    body: str = ""
    headers: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.body)


def json_response(data, status=200):
    return Response(status, json.dumps(data), {"Content-Type": "application/json"})


def error(status, message):
    return json_response({"error": message}, status)
