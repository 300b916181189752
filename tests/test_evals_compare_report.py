"""Paired comparison / McNemar with known numbers, and reports (Markdown, HTML rendered in Chromium)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from math import comb
from pathlib import Path

import pytest

from tooltune.config import Settings
from tooltune.evals.compare import compare_reports, mcnemar_exact
from tooltune.evals.report_html import render_comparison_html, render_html
from tooltune.evals.report_md import render_comparison_markdown, render_markdown
from tooltune.evals.results import CaseResult, RunMeta, build_report
from tooltune.evals.runner import write_reports
from tooltune.evals.scoring import RawCall, Reason, Score
from tooltune.evals.service import adapter_loss_curve, compare_runs, comparison_paths
from tooltune.workspace import Workspace

PASS = Score(passed=True)


def fail(reason: Reason = Reason.wrong_value) -> Score:
    return Score(passed=False, reason=reason, detail="x")


def meta(run_id: str, n: int, **kw) -> RunMeta:
    return RunMeta(run_id=run_id, suite="s", suite_hash="h", n_cases=n, model_name="m", base_url="u", **kw)


def result(cid: str, cat: str, native: bool, lenient: bool, text: str = "", repeat: int = 0) -> CaseResult:
    return CaseResult(
        case_id=cid,
        category=cat,
        repeat=repeat,
        raw_text=text,
        native=PASS if native else fail(Reason.unparsed_format),
        lenient=PASS if lenient else fail(),
    )


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(0, 0) == 1.0
    # b=1, c=9: two-sided exact p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(2, 12) == pytest.approx(2 * sum(comb(14, i) for i in range(3)) / 2**14)


def build_pair():
    # 12 cases: A passes natively 2, B passes natively 10; one regression (c0), nine fixes (c3..c11)
    a = [result(f"c{i}", "simple" if i < 6 else "parallel", native=i < 2, lenient=i < 8) for i in range(12)]
    b = [
        result(
            f"c{i}",
            "simple" if i < 6 else "parallel",
            native=i >= 1 and i != 2,
            lenient=True,
            text="<script>alert(1)</script>",
        )
        for i in range(12)
    ]
    ra = build_report(meta("run-a", 12, label="baseline"), a, wall_s=60)
    rb = build_report(
        meta("run-b", 12, label="ad1", adapter="ad1", loss_curve=[(1, 2.0), (5, 1.2), (10, 0.7)]),
        b,
        wall_s=30,
    )
    return ra, rb


def test_comparison_known_numbers():
    ra, rb = build_pair()
    cmp = compare_reports(ra, rb)
    t = cmp.mcnemar_native
    assert (t.regressions, t.fixes, t.both_pass, t.both_fail) == (1, 9, 1, 1)
    assert t.p_value == pytest.approx(22 / 1024)
    assert cmp.mcnemar_lenient.fixes == 4 and cmp.mcnemar_lenient.regressions == 0
    assert [r.case_id for r in cmp.regressions] == ["c0"]
    # c8..c11 are fixed natively and leniently: one entry per mode, one id per case
    assert len(cmp.fixes) == 13
    assert cmp.fixed_ids() == sorted(f"c{i}" for i in range(3, 12)) and cmp.regressed_ids() == ["c0"]
    assert cmp.regressions[0].reason_b == "unparsed_format"
    assert cmp.categories["overall"].native_a == pytest.approx(2 / 12)
    assert cmp.categories["overall"].native_b == pytest.approx(10 / 12)
    assert cmp.categories["simple"].native_delta == pytest.approx(4 / 6 - 2 / 6)
    assert cmp.n_paired == 12 and cmp.same_suite and cmp.differs == []


def test_a_comparison_names_the_settings_the_runs_did_not_share():
    """Baseline at greedy vs an adapter sampled at 0.7 with another answer length: the pairing measures
    more than the adapter, and the result, the Markdown and the HTML say so."""
    ra, rb = build_pair()
    rb = rb.model_copy(
        update={"meta": rb.meta.model_copy(update={"temperature": 0.7, "seed": 3, "max_tokens": 128})}
    )
    cmp = compare_reports(ra, rb)
    assert cmp.differs == ["temperature: 0.0 vs 0.7", "seed: None vs 3", "max_tokens: 256 vs 128"]
    assert "The runs differ besides the target:** temperature: 0.0 vs 0.7" in render_comparison_markdown(cmp)
    assert "differ besides the target: temperature: 0.0 vs 0.7; seed: None vs 3" in render_comparison_html(
        cmp
    )
    # a seed given to a greedy run changed nothing (none is sent): not a difference
    seeded = ra.model_copy(update={"meta": ra.meta.model_copy(update={"seed": 0})})
    assert compare_reports(seeded, build_pair()[1]).differs == []


def test_changed_cases_show_both_answers_with_their_calls():
    """A regression names what each side called, so a reader sees the wrong value without the raw runs."""
    a = CaseResult(
        case_id="simple-002",
        category="simple",
        native_calls=[RawCall(name="read_file", arguments={"path": "README.md"})],
        native=PASS,
        lenient=PASS,
    )
    wrong = Score(passed=False, reason=Reason.wrong_tool, detail="no call to 'read_file'; got ['git_diff']")
    b = a.model_copy(
        update={
            "raw_text": "Reading `it` now.",
            "native_calls": [
                RawCall(name="git_diff", arguments={"path": "README.md"}),
                RawCall(name="x", arguments="{bad"),
            ],
            "native": wrong,
            "lenient": wrong,
        }
    )
    cmp = compare_reports(build_report(meta("a", 1), [a]), build_report(meta("b", 1), [b]))
    (reg, _) = cmp.regressions  # native and lenient
    assert reg.output_a == 'read_file({"path": "README.md"})'
    assert reg.output_b == 'Reading `it` now.\ngit_diff({"path": "README.md"})\nx({bad)'
    assert reg.detail_b == "no call to 'read_file'; got ['git_diff']"
    md = render_comparison_markdown(cmp)
    assert 'A: `read_file({"path": "README.md"})`' in md
    assert 'B: `Reading \'it\' now. ⏎ git_diff({"path": "README.md"}) ⏎ x({bad)`' in md
    html = render_comparison_html(cmp)
    assert (
        "git_diff({&quot;path&quot;: &quot;README.md&quot;})" in html and "got [&#x27;git_diff&#x27;]" in html
    )
    errored = b.model_copy(update={"error": "HTTP 500 from the server"})
    assert errored.answer_text() == "HTTP 500 from the server"


def test_repeats_majority_vote():
    a = [result("c0", "s", native=k < 2, lenient=True, repeat=k) for k in range(3)]
    b = [result("c0", "s", native=k < 1, lenient=True, repeat=k) for k in range(3)]
    cmp = compare_reports(build_report(meta("a", 1, repeats=3), a), build_report(meta("b", 1, repeats=3), b))
    assert cmp.mcnemar_native.regressions == 1
    # the regression is shown by answers that agree with each verdict: A's pass (#0), B's failure (#1)
    for r in (*a, *b):
        r.raw_text = f"sample {r.repeat}"
    (reg,) = compare_reports(
        build_report(meta("a", 1, repeats=3), a), build_report(meta("b", 1, repeats=3), b)
    ).regressions
    assert (reg.output_a, reg.output_b) == ("sample 0", "sample 1")


def test_markdown_and_html_escape_model_output():
    ra, rb = build_pair()
    md = render_markdown(rb)
    assert "| simple | 6 |" in md and "cases/min" in md
    html = render_html(rb)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<svg" in html and "polyline" in html  # category bars and the loss curve
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # no external assets
    cmp_html = render_comparison_html(compare_reports(ra, rb))
    assert "McNemar p = 0.0215" in cmp_html


def test_compare_runs_writes_files_and_loss_curve(settings: Settings):
    ws = Workspace(settings.workspace).ensure()
    ra, rb = build_pair()
    for r in (ra, rb):
        write_reports(ws, r)
    cmp = compare_runs(ws, "run-a", "run-b")
    paths = comparison_paths(ws, "run-a", "run-b")
    assert json.loads(paths["json"].read_text())["mcnemar_native"]["fixes"] == cmp.mcnemar_native.fixes == 9
    assert "Regressions (1)" in paths["md"].read_text()
    ad = ws.adapter_dir("ad1")
    ad.mkdir(parents=True)
    (ad / "tooltune.json").write_text(json.dumps({"name": "ad1", "run_id": "r1"}))
    (ws.runs / "r1").mkdir(parents=True)
    (ws.runs / "r1" / "events.jsonl").write_text(
        '{"kind": "train", "iteration": 10, "train_loss": 1.5}\n'
        '{"kind": "val", "iteration": 10, "val_loss": 2}\n'
        '{"kind": "train", "iteration": 20, "train_loss": 0.9}\n'
    )
    assert adapter_loss_curve(ws, "ad1") == [(10, 1.5), (20, 0.9)]
    assert adapter_loss_curve(ws, "missing") == []


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
def test_html_report_renders_in_headless_chromium(tmp_path: Path):
    ra, rb = build_pair()
    rb.results.append(
        CaseResult(
            case_id="zz",
            category="parallel",
            raw_text="",
            native_calls=[RawCall(name="read_file", arguments='{"path": ')],
            native=fail(Reason.bad_json),
            lenient=fail(Reason.bad_json),
        )
    )
    page = tmp_path / "report.html"
    page.write_text(render_html(rb))
    png = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                "--window-size=1200,2000",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    keep = Path("/tmp/tooltune-eval-report.png")
    keep.write_bytes(data)  # for a human look
    # the page is not blank: count distinct colours in the decoded image
    import zlib

    width = int.from_bytes(data[16:20], "big")
    idat = b"".join(
        data[i + 8 : i + 8 + int.from_bytes(data[i : i + 4], "big")]
        for i in _chunks(data)
        if data[i + 4 : i + 8] == b"IDAT"
    )
    raw = zlib.decompress(idat)
    bpp = (len(raw) // (width * 1)) and 4  # chromium writes RGBA
    sample = {raw[j : j + 3] for j in range(1, min(len(raw), 400_000), bpp * 7)}
    assert len(sample) > 20


def _chunks(data: bytes):
    i = 8
    while i < len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        yield i
        i += 12 + length
