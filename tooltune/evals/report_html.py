"""placeholder"""

from tooltune.evals.results import EvalReport


def render_html(report: EvalReport) -> str:
    return "<html></html>"
