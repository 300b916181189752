"""An optional teacher model at any OpenAI-compatible endpoint that paraphrases generated requests.

Templates give exact, verifiable requests; a stronger model gives wording variety templates cannot.
The paraphrase is kept only if every argument value still appears verbatim — otherwise the call would
no longer be determined by the text, which is exactly the habit we must not teach.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from tooltune.errors import TooltuneError
from tooltune.logs import get_logger

log = get_logger(__name__)

SYSTEM = (
    "You rewrite requests a user might send to an assistant. Keep the meaning. Keep every quoted value "
    "exactly as written (same characters, same numbers). Reply with the rewritten request only."
)


class TeacherError(TooltuneError):
    pass


class TeacherStats(BaseModel):
    asked: int = 0
    kept: int = 0
    dropped_values_lost: int = 0
    failed: int = 0


class Teacher:
    """Paraphrases via ``POST {base_url}/chat/completions``; ``client`` is injectable for tests."""

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        client: httpx.Client | None = None,
        timeout: float = 60.0,
        api_key: str = "local",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.client = client or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.stats = TeacherStats()

    def paraphrase(self, text: str, must_keep: list[str], *, seed: int = 0) -> str | None:
        """A paraphrase that still contains every string in ``must_keep``, or None."""
        self.stats.asked += 1
        keep = "; ".join(repr(v) for v in must_keep) or "(none)"
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Values to keep verbatim: {keep}\nRequest: {text}"},
            ],
            "temperature": 0.9,
            "max_tokens": 200,
            "seed": seed,
        }
        try:
            r = self.client.post(f"{self.base_url}/chat/completions", json=body, headers=self.headers)
            r.raise_for_status()
            out = r.json()["choices"][0]["message"]["content"]
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
            self.stats.failed += 1
            log.warning("teacher request failed", error=str(e))
            if self.stats.failed >= 5 and self.stats.kept == 0:
                raise TeacherError(
                    f"teacher at {self.base_url} keeps failing ({e}); check --teacher URL"
                ) from e
            return None
        out = (out or "").strip().strip('"').strip()
        if not out or out == text or any(v not in out for v in must_keep):
            self.stats.dropped_values_lost += 1
            return None
        self.stats.kept += 1
        return out
