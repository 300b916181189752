"""`tooltune demo`: the closed loop on the real default model."""

from __future__ import annotations

from tooltune.errors import TooltuneError


def demo(*, quick: bool = False) -> int:
    """Import the default model, generate data, train, evaluate baseline vs adapter, serve (not built yet).

    Parameters
    ----------
    quick
        A shorter run (about 15 minutes on a 2-core CPU).
    """
    raise TooltuneError("`tooltune demo` is not implemented yet (issue 9)")
