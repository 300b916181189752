"""Dataset checks that must pass before any training run.

A bad line costs a training run (or worse, trains the wrong habit silently), so each check names
``file:line`` and the field: JSON and roles, every call valid against its tool's JSON Schema, the
round trip through the *target model's* chat template and mlx-lm's own tool parser, which turns get
loss under ``mask_prompt``, near-duplicates, and leakage of eval requests into training data.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from tooltune.data.examples import DataError, Example, example_from_record, example_key
from tooltune.data.similarity import DEDUP_THRESHOLD, LeakIndex, MinHashIndex
from tooltune.logs import get_logger

log = get_logger(__name__)

ROLES = {"system", "user", "assistant", "tool"}
SPLITS = ("train", "valid", "test")
CHECKS = ("json", "roles", "schema", "roundtrip", "loss", "duplicates", "leakage")


class LintIssue(BaseModel):
    severity: Literal["error", "warning"]
    check: str
    file: str
    line: int
    field: str = ""
    message: str

    def __str__(self) -> str:
        field = f" [{self.field}]" if self.field else ""
        return f"{self.file}:{self.line}{field}: {self.message} ({self.check})"


class CheckResult(BaseModel):
    status: Literal["passed", "failed", "warned", "skipped"]
    errors: int = 0
    warnings: int = 0
    detail: str = ""
    # What the check ran against on this machine (the eval files the leakage check found): shown after
    # the detail, but not part of a dataset's hash (see LintReport.portable)
    context: str = ""


class DatasetStats(BaseModel):
    examples: int = 0
    per_kind: dict[str, int] = Field(default_factory=dict)
    per_tool: dict[str, int] = Field(default_factory=dict)
    per_param: dict[str, int] = Field(default_factory=dict)
    no_call_examples: int = 0
    tool_call_turns: int = 0
    length_unit: str = "whitespace tokens"
    length_histogram: dict[str, int] = Field(default_factory=dict)
    length_max: int = 0
    length_mean: float = 0.0


class LintReport(BaseModel):
    ok: bool
    examples: int
    files: list[str]
    errors: list[LintIssue] = Field(default_factory=list)
    warnings: list[LintIssue] = Field(default_factory=list)
    checks: dict[str, CheckResult] = Field(default_factory=dict)
    stats: DatasetStats = Field(default_factory=DatasetStats)
    model: str | None = None

    def summary(self) -> str:
        parts = []
        for k, v in self.checks.items():
            said = "; ".join(x for x in (v.detail, v.context) if x)
            parts.append(f"{k}: {v.status}" + (f" ({said})" if said else ""))
        return (
            f"{'OK' if self.ok else 'FAILED'} — {self.examples} examples, {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings\n  " + "\n  ".join(parts)
        )

    def portable(self) -> LintReport:
        """The report as a dataset's hash sees it: what lint found in the examples and with which model,
        not what this machine happened to hold. Which eval files the leakage check found (BFCL data next
        to one clone and not another, the workspace's own suites) and where the model folder sits must not
        change the hash of the same examples; a leak they find is an error, and no dataset has one."""
        checks = {k: v.model_copy(update={"context": ""}) for k, v in self.checks.items()}
        model = Path(self.model).name if self.model else self.model
        return self.model_copy(update={"checks": checks, "model": model})


class _Item(BaseModel):
    file: str
    line: int
    example: Example


def load_tokenizer(model_path: Path | str | None) -> Any | None:
    """mlx-lm's TokenizerWrapper (chat template + tool parser) for ``model_path``; None if unavailable."""
    if model_path is None:
        return None
    from mlx_lm.tokenizer_utils import load

    path = Path(model_path)
    if not (path / "tokenizer_config.json").exists() and not (path / "tokenizer.json").exists():
        raise DataError(f"{path} has no tokenizer; pass --model with an MLX model folder")
    return load(path)


def _render(tok: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], gen: bool) -> str:
    return tok.apply_chat_template(messages, tools=tools or None, add_generation_prompt=gen, tokenize=False)


def _parse_calls(tok: Any, text: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split the assistant text at the tokenizer's tool-call markers and parse each block with mlx-lm's
    parser for this tokenizer — the same code path mlx_lm.server uses."""
    start, end = tok.tool_call_start, tok.tool_call_end
    calls: list[dict[str, Any]] = []
    rest = text
    while start in rest:
        rest = rest.split(start, 1)[1]
        block, _, rest = rest.partition(end) if end else (rest, "", "")
        parsed = tok.tool_parser(block, tools)
        for c in parsed if isinstance(parsed, list) else [parsed]:
            args = c.get("arguments", {})
            if isinstance(args, str):
                args = json.loads(args)
            calls.append({"name": c.get("name"), "arguments": args})
    return calls


class _Linter:
    def __init__(self, tok: Any | None, leak: LeakIndex | None, mask_prompt: bool) -> None:
        self.tok = tok
        self.leak = leak
        self.mask_prompt = mask_prompt
        self.issues: list[LintIssue] = []
        self.validators: dict[str, Draft202012Validator] = {}

    def add(
        self, sev: Literal["error", "warning"], check: str, item: tuple[str, int], field: str, msg: str
    ) -> None:
        self.issues.append(
            LintIssue(severity=sev, check=check, file=item[0], line=item[1], field=field, message=msg)
        )

    def structure(self, where: tuple[str, int], ex: Example) -> bool:
        ok = True
        msgs = ex.messages
        tool_names = []
        for j, t in enumerate(ex.tools):
            fn = t.get("function", t) if isinstance(t, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                self.add("error", "roles", where, f"tools[{j}].function.name", "tool spec has no name")
                ok = False
            else:
                tool_names.append(fn["name"])
        for i, m in enumerate(msgs):
            f = f"messages[{i}]"
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ROLES:
                self.add("error", "roles", where, f"{f}.role", f"unknown role {role!r}; use {sorted(ROLES)}")
                ok = False
                continue
            if role == "system" and i != 0:
                self.add("error", "roles", where, f"{f}.role", "a system message may only come first")
                ok = False
            if role == "tool" and not any(
                x.get("tool_calls") for x in msgs[:i] if x.get("role") == "assistant"
            ):
                self.add("error", "roles", where, f"{f}.role", "tool result without a preceding tool call")
                ok = False
            content = m.get("content")
            if content is not None and not isinstance(content, str):
                self.add("error", "roles", where, f"{f}.content", "content must be a string")
                ok = False
            if role in ("user", "tool") and not (content or "").strip():
                self.add("error", "roles", where, f"{f}.content", f"empty {role} message")
                ok = False
            if role == "assistant" and not m.get("tool_calls") and not (content or "").strip():
                self.add(
                    "error", "roles", where, f"{f}.content", "assistant turn with neither text nor tool calls"
                )
                ok = False
            for k, tc in enumerate(m.get("tool_calls") or []):
                fn = tc.get("function") if isinstance(tc, dict) else None
                ff = f"{f}.tool_calls[{k}].function"
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    self.add("error", "roles", where, f"{ff}.name", "tool call without a function name")
                    ok = False
                elif not isinstance(fn.get("arguments"), dict):
                    self.add(
                        "error",
                        "roles",
                        where,
                        f"{ff}.arguments",
                        "arguments must be a JSON object (the chat template renders it with tojson)",
                    )
                    ok = False
        first = next((m.get("role") for m in msgs if isinstance(m, dict) and m.get("role") != "system"), None)
        if first != "user":
            self.add(
                "error", "roles", where, "messages", "the first non-system message must be from the user"
            )
            ok = False
        return ok

    def schema(self, where: tuple[str, int], ex: Example) -> None:
        tools = {}
        for t in ex.tools:
            fn = t.get("function", t)
            tools[fn["name"]] = fn.get("parameters") or {"type": "object", "properties": {}}
        for i, m in enumerate(ex.messages):
            for k, tc in enumerate(m.get("tool_calls") or []):
                fn = tc["function"]
                ff = f"messages[{i}].tool_calls[{k}].function"
                if fn["name"] not in tools:
                    self.add(
                        "error",
                        "schema",
                        where,
                        f"{ff}.name",
                        f"unknown tool {fn['name']!r}: not in this example's tools {sorted(tools)}",
                    )
                    continue
                key = json.dumps(tools[fn["name"]], sort_keys=True)
                v = self.validators.get(key) or self.validators.setdefault(
                    key, Draft202012Validator(tools[fn["name"]])
                )
                for err in sorted(v.iter_errors(fn["arguments"]), key=lambda e: list(e.absolute_path)):
                    path = ".".join(str(p) for p in err.absolute_path)
                    self.add(
                        "error",
                        "schema",
                        where,
                        f"{ff}.arguments" + (f".{path}" if path else ""),
                        f"{fn['name']}: {err.message}",
                    )

    def roundtrip(self, where: tuple[str, int], ex: Example) -> int:
        """Render each tool-call turn with the model's template, tokenize, decode, parse back."""
        tok = self.tok
        n = 0
        for i, m in enumerate(ex.messages):
            if m.get("role") != "assistant" or not m.get("tool_calls"):
                continue
            n += 1
            f = f"messages[{i}].tool_calls"
            try:
                prefix = _render(tok, ex.messages[:i], ex.tools, True)
                full = _render(tok, ex.messages[: i + 1], ex.tools, False)
            except Exception as e:  # jinja errors are user data errors here
                self.add("error", "roundtrip", where, f, f"chat template failed to render: {e}")
                continue
            if not full.startswith(prefix):
                self.add("error", "roundtrip", where, f, "rendered conversation does not extend its prompt")
                continue
            segment = full[len(prefix) :]
            text = tok.decode(tok.encode(segment, add_special_tokens=False))
            want = [
                {"name": tc["function"]["name"], "arguments": tc["function"]["arguments"]}
                for tc in m["tool_calls"]
            ]
            try:
                got = _parse_calls(tok, text, ex.tools)
            except (ValueError, json.JSONDecodeError, AttributeError, TypeError) as e:
                self.add(
                    "error",
                    "roundtrip",
                    where,
                    f,
                    f"mlx-lm's tool parser cannot parse the rendered call ({type(e).__name__}: {e})",
                )
                continue
            if got != want:
                self.add(
                    "error",
                    "roundtrip",
                    where,
                    f,
                    f"calls changed in the template round trip: wrote {json.dumps(want)[:200]}, "
                    f"parsed back {json.dumps(got)[:200]}",
                )
        return n

    def loss(self, where: tuple[str, int], ex: Example, trained: set[str]) -> None:
        """Under mask_prompt a tool-call turn is trained only in an example that *ends* with it; a turn
        that is never last anywhere in the dataset gets no loss at all."""
        last = ex.messages[-1]
        if last.get("role") != "assistant":
            self.add(
                "error",
                "loss",
                where,
                f"messages[{len(ex.messages) - 1}].role",
                "the last message must be the assistant's: it is the one that receives loss",
            )
        if not self.mask_prompt:
            return
        for i, m in enumerate(ex.messages[:-1]):
            if m.get("role") == "assistant" and m.get("tool_calls") and _prefix_key(ex, i + 1) not in trained:
                self.add(
                    "warning",
                    "loss",
                    where,
                    f"messages[{i}].tool_calls",
                    "this tool-call turn gets no loss under mask_prompt (only the last message is trained "
                    "and no example ends with it); fix: `tooltune data split-turns FILE --out NEW`",
                )


def _prefix_key(ex: Example, n: int) -> str:
    return json.dumps([ex.messages[:n], ex.tools], sort_keys=True)


def _stats(items: list[_Item], tok: Any | None) -> DatasetStats:
    st = DatasetStats(examples=len(items))
    kinds: Counter[str] = Counter()
    tools: Counter[str] = Counter()
    params: Counter[str] = Counter()
    lengths: list[int] = []
    for it in items:
        ex = it.example
        kinds[ex.meta.kind] += 1
        calls = ex.calls()
        if not calls:
            st.no_call_examples += 1
        st.tool_call_turns += sum(
            1 for m in ex.messages if m.get("role") == "assistant" and m.get("tool_calls")
        )
        for c in calls:
            tools[str(c["name"])] += 1
            if isinstance(c["arguments"], dict):
                for p in c["arguments"]:
                    params[f"{c['name']}.{p}"] += 1
        if tok is not None:
            try:
                lengths.append(
                    len(tok.encode(_render(tok, ex.messages, ex.tools, False), add_special_tokens=False))
                )
                continue
            except Exception:  # noqa: BLE001 - an unrenderable example is reported by the roundtrip check
                pass
        lengths.append(len(json.dumps(ex.to_record()["messages"] + ex.tools, ensure_ascii=False).split()))
    st.per_kind = dict(sorted(kinds.items()))
    st.per_tool = dict(sorted(tools.items()))
    st.per_param = dict(sorted(params.items()))
    st.length_unit = "model tokens (chat template incl. tools)" if tok is not None else "whitespace tokens"
    if lengths:
        st.length_max = max(lengths)
        st.length_mean = round(sum(lengths) / len(lengths), 1)
        edges = [64, 128, 256, 512, 1024, 2048, 4096]
        hist: Counter[str] = Counter()
        for n in lengths:
            b = next((e for e in edges if n <= e), None)
            hist[f"<={b}" if b else f">{edges[-1]}"] += 1
        st.length_histogram = {k: hist[k] for k in [f"<={e}" for e in edges] + [f">{edges[-1]}"] if hist[k]}
    return st


def _read(path: Path, label: str, linter: _Linter) -> list[_Item]:
    items: list[_Item] = []
    with Path(path).open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                linter.add("error", "json", (label, i), "", f"invalid JSON: {e.msg} at column {e.colno}")
                continue
            if not isinstance(obj, dict):
                linter.add("error", "json", (label, i), "", "expected one JSON object per line")
                continue
            try:
                ex = example_from_record(obj, f"{label}:{i}")
            except DataError as e:
                linter.add("error", "json", (label, i), "messages", str(e).split(": ", 1)[-1])
                continue
            items.append(_Item(file=label, line=i, example=ex))
    return items


def lint_items(
    files: list[tuple[Path, str]],
    *,
    model_path: Path | str | None = None,
    tokenizer: Any | None = None,
    leak_index: LeakIndex | None = None,
    mask_prompt: bool = True,
) -> LintReport:
    """Lint several JSONL files as one dataset (duplicates are checked across files)."""
    tok = tokenizer if tokenizer is not None else load_tokenizer(model_path)
    linter = _Linter(tok, leak_index, mask_prompt)
    items: list[_Item] = []
    for path, label in files:
        items += _read(path, label, linter)
    dedup = MinHashIndex(DEDUP_THRESHOLD, bands=16, rows=8)
    rt_turns = 0
    dups = leaks = 0

    trained = {_prefix_key(it.example, len(it.example.messages)) for it in items}
    for it in items:
        where = (it.file, it.line)
        ex = it.example
        if not linter.structure(where, ex):
            continue
        linter.schema(where, ex)
        linter.loss(where, ex, trained)
        if tok is not None and getattr(tok, "has_tool_calling", False):
            rt_turns += linter.roundtrip(where, ex)
        key = example_key(ex)
        hit = dedup.query(key)
        if hit is not None:
            dups += 1
            linter.add(
                "warning",
                "duplicates",
                where,
                "messages",
                f"near-duplicate of {hit[0]} (similarity {hit[1]:.2f}); drop one",
            )
        else:
            dedup.add(f"{it.file}:{it.line}", key)
        if leak_index is not None:
            for j, m in enumerate(ex.messages):
                if m.get("role") == "user":
                    lh = leak_index.match(str(m.get("content") or ""))
                    if lh is not None:
                        leaks += 1
                        linter.add(
                            "error",
                            "leakage",
                            where,
                            f"messages[{j}].content",
                            f"eval request leaked into training data: matches {lh[0]} "
                            f"(similarity {lh[1]:.2f}); remove this example",
                        )
                        break
    errors = [i for i in linter.issues if i.severity == "error"]
    warnings = [i for i in linter.issues if i.severity == "warning"]
    checks: dict[str, CheckResult] = {}
    for c in CHECKS:
        ne = sum(1 for i in errors if i.check == c)
        nw = sum(1 for i in warnings if i.check == c)
        checks[c] = CheckResult(
            status="failed" if ne else "warned" if nw else "passed", errors=ne, warnings=nw
        )
    if tok is None:
        checks["roundtrip"] = CheckResult(
            status="skipped", detail="no model given: template/parser round trip NOT checked (pass --model)"
        )
    elif not getattr(tok, "has_tool_calling", False):
        checks["roundtrip"] = CheckResult(status="skipped", detail="the model's tokenizer has no tool parser")
    else:
        checks["roundtrip"].detail = f"{rt_turns} tool-call turns rendered and parsed back"
    checks["duplicates"].detail = f"{dups} near-duplicates (char 5-gram Jaccard >= {DEDUP_THRESHOLD})"
    if leak_index is None:
        checks["leakage"] = CheckResult(status="skipped", detail="no eval index given")
    else:
        checks["leakage"].detail = f"{leaks} leaked"
        found = ", ".join(leak_index.sources) or "none found"
        checks["leakage"].context = f"checked against {len(leak_index)} eval requests ({found})"
    checks["loss"].detail = (
        "mask_prompt: only the last message of each example is trained"
        if mask_prompt
        else "no prompt masking: every token is trained"
    )
    report = LintReport(
        ok=not errors,
        examples=len(items),
        files=[label for _, label in files],
        errors=errors,
        warnings=warnings,
        checks=checks,
        stats=_stats(items, tok),
        model=str(model_path) if model_path is not None else None,
    )
    log.info("lint done", ok=report.ok, examples=report.examples, errors=len(errors), warnings=len(warnings))
    return report


def lint_file(
    path: Path | str,
    *,
    model_path: Path | str | None = None,
    leak_index: LeakIndex | None = None,
    ws_root: Path | None = None,
    bfcl_dir: Path | None = None,
    mask_prompt: bool = True,
    tokenizer: Any | None = None,
) -> LintReport:
    """Lint one JSONL file. Leakage is checked against ``ws_root``'s eval suites and the BFCL files
    unless a ``leak_index`` is passed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass a JSONL file or a dataset name")
    if leak_index is None:
        leak_index = LeakIndex.for_workspace(ws_root, bfcl_dir)
    return lint_items(
        [(path, path.name)],
        model_path=model_path,
        tokenizer=tokenizer,
        leak_index=leak_index,
        mask_prompt=mask_prompt,
    )


def lint_dataset_dir(
    path: Path | str,
    model_path: Path | str | None = None,
    *,
    leak_index: LeakIndex | None = None,
    ws_root: Path | None = None,
    bfcl_dir: Path | None = None,
    mask_prompt: bool = True,
    tokenizer: Any | None = None,
) -> LintReport:
    """Lint ``train/valid/test.jsonl`` of a dataset folder as one dataset (what training calls first).
    The workspace is inferred from ``<ws>/datasets/<name>`` when not given."""
    path = Path(path)
    files = [(path / f"{s}.jsonl", f"{s}.jsonl") for s in SPLITS if (path / f"{s}.jsonl").is_file()]
    if not files:
        raise DataError(f"{path}: no train/valid/test.jsonl found; is this a dataset folder?")
    if ws_root is None and path.parent.name == "datasets":
        ws_root = path.parent.parent
    if leak_index is None:
        leak_index = LeakIndex.for_workspace(ws_root, bfcl_dir)
    return lint_items(
        files, model_path=model_path, tokenizer=tokenizer, leak_index=leak_index, mask_prompt=mask_prompt
    )
