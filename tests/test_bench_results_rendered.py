"""README's Results section and bench/RESULTS.md are what bench/render_readme.py makes of bench/results/.

A result added (or changed) without re-rendering would leave the README's numbers typed by nobody."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_readme_and_results_md_are_rendered_from_the_results_files() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "render_readme.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_base_models_table_shows_each_measured_model() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import render_readme
    finally:
        sys.path.pop(0)
    import json

    data = json.loads((REPO / "bench" / "results" / "bfcl_base_models.json").read_text())
    table = "\n".join(render_readme.base_models())
    for name, runs in data["models"].items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        o = runs["simple_python"]
        assert f"{o['lenient_pass']}/{o['n']}" in row


def test_headline_counts_carry_their_95_percent_interval() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import render_readme
    finally:
        sys.path.pop(0)
    import pytest

    lo, hi = render_readme.wilson(31, 40)  # Wilson score interval, z = 1.96
    assert (lo, hi) == (pytest.approx(0.6250, abs=1e-3), pytest.approx(0.8768, abs=1e-3))
    assert render_readme.wilson(0, 40)[0] == 0.0 and render_readme.wilson(40, 40)[1] == 1.0
    assert render_readme._pct_ci(31, 40) == "31/40 (78%, 62%–88%)"
    assert "31/40 (78%, 62%–88%)" in (REPO / "README.md").read_text()


@pytest.mark.parametrize(
    ("summary", "model", "inputs"),
    [("bfcl_full_0.5b.json", "0.5B", "bfcl_full"), ("bfcl_full_1.5b.json", "1.5B", "bfcl_full_1.5b")],
)
def test_the_full_scale_tables_lead_with_every_category_and_each_seed(
    summary: str, model: str, inputs: str
) -> None:
    """README's first tables are bench/results/bfcl_full_<model>.json: one line per trained category, each
    seed's native rate, the baseline's text-format rate, links to the inputs; a row dropped or a seed lost
    would fail here."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import render_readme
    finally:
        sys.path.pop(0)
    import json

    assert (summary, model, inputs) in render_readme.FULL
    doc = json.loads((REPO / "bench" / "results" / summary).read_text())
    section = "\n".join(render_readme.full_scale(summary, model, inputs))
    assert f"the {model}, temperature 0" in section
    lines = section.splitlines()
    for row in doc["rows"]:
        if row["category"] != row["trained_on"]:
            continue  # irrelevance rows are a column of their category's line
        line = next(x for x in lines if x.startswith(f"| {row['category']} | {row['cases']} |"))
        assert f"{row['adapter']['native']:.0%}" in line and f"{row['baseline']['lenient']:.0%}" in line
        assert f"(bench/results/{inputs}/{row['result']})" in line
    readme = (REPO / "README.md").read_text()
    assert readme.index("**Every case**") < readme.index("Earlier attempts, each on a seeded sample")


def test_the_methods_table_shows_each_methods_run_against_its_sft_start_and_the_goals() -> None:
    """Issue 36's runs: one line per listed result file, the SFT start's and the method's passes out of the
    file (irrelevance by no call attempt: a call written as text is a call), the goals each meets."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import render_readme
    finally:
        sys.path.pop(0)
    import json

    section = "\n".join(render_readme.methods_table())
    lines = section.splitlines()
    assert len(render_readme.METHOD_ROWS) >= 7
    met_both = 0
    for model, what, name in render_readme.METHOD_ROWS:
        d = json.loads((REPO / "bench" / "results" / name).read_text())
        line = next(x for x in lines if x.startswith(f"| {model} | {what} |"))
        sp, irr = d["results"]["simple_python"], d["results"]["irrelevance"]
        assert (
            f"{sp['sft']['overall']['native_pass']} → **{sp['adapter']['overall']['native_pass']}**" in line
        )
        assert (
            f"{irr['sft']['overall']['lenient_pass']} → **{irr['adapter']['overall']['lenient_pass']}**"
            in line
        )
        assert f"(bench/results/{name})" in line
        goal_sp, goal_irr = render_readme.METHOD_GOALS[model]
        ok = (
            sp["adapter"]["overall"]["native_rate"] >= goal_sp,
            irr["adapter"]["overall"]["lenient_rate"] >= goal_irr,
        )
        met_both += all(ok)
        assert ("simple_python" in line.split("|")[5]) == ok[0] and (
            "irrelevance" in line.split("|")[5]
        ) == ok[1]
    assert f"{met_both} of {len(render_readme.METHOD_ROWS)} runs meet both goals." in section
    # GRPO at half no-call draws is the one run over the irrelevance goal (218/240): the table says so
    grpo50 = next(x for x in lines if "50% no-call draws" in x)
    assert "187 → **218**" in grpo50 and grpo50.split("|")[5].strip() == "irrelevance"
    assert section in (REPO / "README.md").read_text()
