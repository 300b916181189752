"""Example: one training conversation in mlx-lm's ``tools`` chat format, plus where it came from.

The JSONL line is exactly what ``mlx_lm.tuner.datasets.ChatDataset`` reads (``messages`` and ``tools``);
``meta`` rides along (mlx-lm ignores unknown keys) so stats, splits and dedup can see the kind, the
source and the conversation an example was split from without re-deriving them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tooltune.errors import TooltuneError

KINDS = (
    "single",  # one call, one tool (or a small set where the right one is obvious)
    "choose",  # one call, the right tool among distractors
    "parallel",  # several calls in one assistant turn
    "edge_args",  # one call exercising argument edge cases (all optionals, spaces, paths, negatives)
    "multi_answer",  # call -> tool result -> final plain answer
    "multi_chain",  # call -> tool result -> next call
    "no_call",  # near-domain request no offered tool can serve -> plain answer
    "chitchat",  # small talk -> plain answer
    "caller",  # supplied by the caller (--examples / import)
)


class DataError(TooltuneError):
    """Bad input data: the message names file:line and the field to fix."""


class ExampleMeta(BaseModel):
    kind: str = "caller"
    source: str = "caller"
    group: str = Field(default="", description="Id of the conversation this example was split from.")
    teacher: bool = False


class Example(BaseModel):
    """One conversation. ``messages`` and ``tools`` are plain dicts because that is what the chat
    template and mlx-lm consume; validation lives in :mod:`tooltune.data.lint`."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    meta: ExampleMeta = Field(default_factory=ExampleMeta)

    def to_record(self) -> dict[str, Any]:
        return {"messages": self.messages, "tools": self.tools, "meta": self.meta.model_dump()}

    def to_line(self) -> str:
        """Canonical JSON (sorted keys): the same example always gives the same bytes, hence hash."""
        return json.dumps(self.to_record(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def content_hash(self) -> str:
        """Hash of messages + tools only, so changing provenance metadata does not change identity."""
        body = json.dumps(
            {"messages": self.messages, "tools": self.tools}, sort_keys=True, ensure_ascii=False
        )
        return hashlib.sha256(body.encode("utf-8")).hexdigest()

    def user_texts(self) -> list[str]:
        return [str(m.get("content") or "") for m in self.messages if m.get("role") == "user"]

    def tool_names(self) -> list[str]:
        return [t.get("function", t).get("name", "") for t in self.tools]

    def calls(self) -> list[dict[str, Any]]:
        """All tool calls of all assistant turns as ``{"name", "arguments"}``."""
        out: list[dict[str, Any]] = []
        for m in self.messages:
            if m.get("role") == "assistant":
                for tc in m.get("tool_calls") or []:
                    fn = tc.get("function", tc)
                    out.append({"name": fn.get("name"), "arguments": fn.get("arguments")})
        return out

    def target_text(self) -> str:
        """The last message in compact form: what the model is trained to produce under prompt masking."""
        last = self.messages[-1] if self.messages else {}
        if last.get("tool_calls"):
            return json.dumps(
                [tc.get("function", tc) for tc in last["tool_calls"]], sort_keys=True, ensure_ascii=False
            )
        return str(last.get("content") or "")


def call_message(calls: list[tuple[str, dict[str, Any]]], content: str = "") -> dict[str, Any]:
    """An assistant turn carrying tool calls; arguments stay a JSON object (the Qwen template tojson's it)."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls],
    }


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a malformed line is a DataError naming file:line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; pass an existing JSONL file")
    out: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}:{i}: invalid JSON ({e.msg} at column {e.colno}); fix that line"
                ) from e
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{i}: expected a JSON object per line, got {type(obj).__name__}")
            out.append((i, obj))
    return out


def example_from_record(obj: dict[str, Any], where: str) -> Example:
    """Build an Example from a JSONL object; ``where`` is ``file:line`` for the error message."""
    if not isinstance(obj.get("messages"), list) or not obj["messages"]:
        raise DataError(f"{where}: field 'messages' must be a non-empty list of chat messages")
    tools = obj.get("tools") or []
    if not isinstance(tools, list):
        raise DataError(f"{where}: field 'tools' must be a list of OpenAI function specs")
    meta = obj.get("meta") or {}
    try:
        return Example(messages=obj["messages"], tools=tools, meta=ExampleMeta.model_validate(meta))
    except ValueError as e:
        raise DataError(f"{where}: invalid example ({e.__class__.__name__}: {str(e).splitlines()[0]})") from e


def split_turns(example: Example) -> list[Example]:
    """One example per assistant turn, each ending at that turn.

    mlx-lm's ``mask_prompt`` trains only the last message, so in an unsplit multi-turn example every
    earlier tool call would get no loss; splitting makes every assistant turn the last one once.
    """
    cuts = [i for i, m in enumerate(example.messages) if m.get("role") == "assistant"]
    if len(cuts) <= 1 and (not cuts or cuts[-1] == len(example.messages) - 1):
        return [example]
    return [
        Example(messages=example.messages[: i + 1], tools=example.tools, meta=example.meta.model_copy())
        for i in cuts
    ]


def example_key(ex: Example) -> str:
    """What makes two examples the same lesson: the user's words and the trained target."""
    return " | ".join(ex.user_texts()) + " => " + ex.target_text()
