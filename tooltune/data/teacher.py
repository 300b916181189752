"""An optional teacher model at any OpenAI-compatible endpoint that paraphrases generated requests.

Templates give exact, verifiable requests; a model gives wording variety templates cannot ("Who wrote
Pride and Prejudice?" for "retrieve the author of a book where the book title is ..."). Worked examples
in the prompt let even the 0.5B student do this. The paraphrase is kept only if every argument value
still appears verbatim (otherwise the call would no longer be determined by the text, which is exactly
the habit we must not teach) and it reads as a request, not as code, a URL or the model's answer.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from tooltune.config import Settings
from tooltune.data.polish import pleases
from tooltune.errors import TooltuneError
from tooltune.logs import get_logger
from tooltune.serving.model_server import ModelServer

log = get_logger(__name__)

SELF = "self"  # --teacher self: the model being trained, served for the length of the generation

# 1: instruction only; 2: instruction + worked examples + the request-shape check; 3: + the role check
# (a rewrite that puts a value after another parameter's name is dropped); 4: near misses are rewritten
# too (their sibling word kept, the tool's own word refused)
TEACHER_PROMPT_VERSION = 4
SYSTEM = (
    "You turn a stiff request into the short question or request a person would really type. Use every "
    "listed value exactly as written. Do not answer it, do not add anything. Reply with one sentence only."
)
# Worked examples: a small model (even the 0.5B student itself) follows them far better than the
# instruction alone, which it tends to answer or turn into code. None is from an eval set; their tools
# (weather, books, currencies, space missions) only show the style: plain questions with values inline.
SHOTS: list[tuple[list[str], str, str]] = [
    (
        ["Tokyo", "3"],
        "Get the weather forecast for a location over a number of days with location Tokyo, days set to 3.",
        "What will the weather be like in Tokyo over the next 3 days?",
    ),
    (
        ["Pride and Prejudice"],
        "Retrieve the author of a book where the book title is Pride and Prejudice.",
        "Who wrote Pride and Prejudice?",
    ),
    (
        ["250", "EUR", "JPY"],
        "Convert an amount between currencies (amount: 250, from currency = EUR, to currency JPY).",
        "How many JPY do I get for 250 EUR?",
    ),
    (
        ["Apollo 11"],
        "Find the launch year of a space mission with mission name set to Apollo 11.",
        "When did Apollo 11 launch?",
    ),
]
# What an answer, code or an API call looks like: never a user's request.
_NOT_A_REQUEST = re.compile(r"```|[{}]|https?://|\bGET /|\bPOST /|^(Request|Values|Answer)\s*:", re.I)


def prompt(text: str, must_keep: list[str]) -> list[dict[str, str]]:
    """The chat the teacher is sent: instruction, worked examples, then the request to rewrite."""

    def ask(keep: list[str], request: str) -> dict[str, str]:
        values = "; ".join(repr(v) for v in keep) or "(none)"
        return {"role": "user", "content": f"Values: {values}\nRequest: {request}"}

    msgs = [{"role": "system", "content": SYSTEM}]
    for keep, request, rewritten in SHOTS:
        msgs += [ask(keep, request), {"role": "assistant", "content": rewritten}]
    return [*msgs, ask(must_keep, text)]


def looks_like_a_request(out: str, text: str) -> bool:
    """One line of plain words, not much longer than the original: not code, a URL or an answer
    ("The third chord of the key is ..." is the model answering, which a user's request never starts as)."""
    answer = out.startswith("The ") and not out.endswith("?")
    short = len(out) <= 2 * len(text) + 40
    return "\n" not in out and not _NOT_A_REQUEST.search(out) and short and not answer


def says_please_more(out: str, text: str, values: list[str]) -> bool:
    """Does the rewrite say "please" more often than a request does ("please run it, please"): more than
    once, and more than the original, not counting the values it must keep (a comment saying "please
    verify" is the user's text, not their manners)?"""

    def own(s: str) -> int:
        for v in sorted(values, key=len, reverse=True):
            s = s.replace(v, " ")
        return pleases(s)

    return own(out) > max(1, own(text))


UNTIL_EVERY = 16
"""A streamed reply's stop check also runs every this many pieces: a reply can run on inside one string
(a request growing clause by clause) with none of the characters that otherwise trigger it."""


class TeacherError(TooltuneError):
    pass


class TeacherStats(BaseModel):
    """Per request to rewrite: ``asked`` = ``kept`` + the drops + ``failed`` (the outcome of its last
    try). ``retries`` counts the extra tries, ``kept_on_retry`` the rewrites a retry saved."""

    asked: int = 0
    kept: int = 0
    dropped_values_lost: int = 0
    dropped_not_a_request: int = 0
    dropped_roles_swapped: int = 0
    dropped_task_changed: int = 0
    failed: int = 0
    retries: int = 0
    kept_on_retry: int = 0


class Teacher:
    """Paraphrases via ``POST {base_url}/chat/completions``; ``client`` is injectable for tests.

    ``timeout`` is per request and as long as the model server's: a local teacher on a CPU writes a
    1,500-token phrasebook draft in minutes (the 1.5B here decodes a few tokens a second)."""

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        client: httpx.Client | None = None,
        timeout: float = 900.0,
        api_key: str = "local",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.client = client or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.stats = TeacherStats()
        self.completion_tokens = 0  # the replies' usage; streamed replies count pieces (~1 per token)
        self._lock = threading.Lock()

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 1500,
        temperature: float = 0.7,
        seed: int | None = 0,
        timeout: float | None = None,
        until: Callable[[str], bool] | None = None,
    ) -> str:
        """One completion of ``messages`` (a phrasebook draft, say); TeacherError names the endpoint.
        ``seed=None`` sends none: mlx_lm.server batches concurrent requests only when they carry no seed.
        ``timeout`` (seconds) replaces the client's for this request. With ``until``, the reply is streamed
        and the connection closed as soon as ``until(reply so far)`` holds (checked when a ``}``, ``]`` or
        ``"`` arrives, and every :data:`UNTIL_EVERY` pieces whatever they hold): mlx_lm.server ends a
        request at its next write to a closed connection, so what a model would write after the part
        wanted is never generated."""
        body = {"model": self.model, "messages": messages, "temperature": temperature,
                "max_tokens": max_tokens, **({"seed": seed} if seed is not None else {})}  # fmt: skip
        try:
            if until is not None:
                return self._stream_until(body, until, timeout)
            r = self.client.post(
                f"{self.base_url}/chat/completions",
                json=body,
                headers=self.headers,
                **({"timeout": timeout} if timeout is not None else {}),
            )
            r.raise_for_status()
            reply = r.json()
            with self._lock:
                self.completion_tokens += int((reply.get("usage") or {}).get("completion_tokens") or 0)
            return str(reply["choices"][0]["message"]["content"] or "")
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise TeacherError(
                f"teacher at {self.base_url} failed ({e}); check the teacher URL and model"
            ) from e

    def _stream_until(self, body: dict[str, Any], until: Callable[[str], bool], timeout: float | None) -> str:
        text, pieces, finished = "", 0, False
        with self.client.stream(
            "POST",
            f"{self.base_url}/chat/completions",
            json={**body, "stream": True},
            headers=self.headers,
            **({"timeout": timeout} if timeout is not None else {}),
        ) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                data = line.removeprefix("data:").strip()
                if not line.startswith("data:") or not data:
                    continue
                if data == "[DONE]":
                    finished = True
                    break
                choices = json.loads(data).get("choices") or [{}]
                finished = finished or bool(choices[0].get("finish_reason"))
                piece = str((choices[0].get("delta") or {}).get("content") or "")
                pieces += bool(piece)
                text += piece
                due = any(c in piece for c in '}]"') or (bool(piece) and pieces % UNTIL_EVERY == 0)
                if due and until(text):
                    finished = True
                    break
        if not finished:  # the connection closed mid-reply: the endpoint failed, the text is partial
            raise TeacherError(f"teacher at {self.base_url} stopped mid-reply after {pieces} pieces")
        with self._lock:
            self.completion_tokens += pieces  # streamed pieces: about one per token
        return text

    def paraphrase(
        self,
        text: str,
        must_keep: list[str],
        *,
        seed: int = 0,
        tries: int = 1,
        check: Callable[[str], str | None] | None = None,
    ) -> str | None:
        """A paraphrase that still contains every string in ``must_keep`` and passes ``check`` (which
        names what is wrong: "roles_swapped", "task_changed"), or None. A rewrite that fails is asked
        for again, up to ``tries`` times in all (sampled with seeds ``seed``, ``seed + 1``, ...: the
        small model drops a value in about half its rewrites, and a second sample keeps about a third
        of those)."""
        self.stats.asked += 1
        outcome = "failed"
        for k in range(tries):
            if k:
                self.stats.retries += 1
            out, outcome = self._try(text, must_keep, seed + k, check)
            if out is not None:
                self.stats.kept += 1
                self.stats.kept_on_retry += k > 0
                return out
            if outcome == "failed":
                break
        field = "failed" if outcome == "failed" else f"dropped_{outcome}"
        setattr(self.stats, field, getattr(self.stats, field) + 1)
        return None

    def _try(
        self, text: str, must_keep: list[str], seed: int, check: Callable[[str], str | None] | None
    ) -> tuple[str | None, str]:
        """One completion: (the rewrite, "kept") or (None, why it was not kept)."""
        body = {
            "model": self.model,
            "messages": prompt(text, must_keep),
            "temperature": 0.7,
            "max_tokens": 120,
            "seed": seed,
        }
        try:
            r = self.client.post(f"{self.base_url}/chat/completions", json=body, headers=self.headers)
            r.raise_for_status()
            out = r.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
            log.warning("teacher request failed", error=str(e))
            if self.stats.failed >= 4 and self.stats.kept == 0:  # this is the fifth failure, none worked
                raise TeacherError(
                    f"teacher at {self.base_url} keeps failing ({e}); check the teacher URL and model"
                ) from e
            return None, "failed"
        out = (out or "").strip().strip('"').strip()
        if not out or out == text or any(v not in out for v in must_keep):
            return None, "values_lost"
        if not looks_like_a_request(out, text) or says_please_more(out, text, must_keep):
            return None, "not_a_request"
        if check is not None and (why := check(out)) is not None:
            return None, why
        return out, "kept"


@contextmanager
def self_teacher(model_path: Path, settings: Settings) -> Iterator[Teacher]:
    """The model itself as the teacher, served by ``mlx_lm.server`` while the block runs (no adapter).
    Nothing else is needed offline; with the worked examples even a 0.5B model rewrites most requests."""
    from anyio.from_thread import start_blocking_portal

    server = ModelServer(model_path, settings=settings, record_active=False)
    with start_blocking_portal() as portal:
        portal.call(server.start)
        try:
            log.info("self teacher started", model=str(model_path), url=server.base_url)
            yield Teacher(server.base_url, server.model_name, timeout=server.request_timeout)
        finally:
            portal.call(server.stop)


@contextmanager
def open_teacher(
    spec: str | None, *, model_path: Path | None, settings: Settings, model: str = "default"
) -> Iterator[Teacher | None]:
    """The teacher ``spec`` names for the length of the block: None for none, ``"self"`` for the model
    at ``model_path`` served by :func:`self_teacher`, else an endpoint URL asked for ``model``."""
    if spec is None:
        yield None
    elif spec == SELF:
        if model_path is None:
            raise TeacherError("--teacher self needs a model to serve; pass --model")
        with self_teacher(model_path, settings) as teacher:
            yield teacher
    else:
        yield Teacher(spec, model)
