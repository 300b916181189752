"""`tooltune adapters`: the registry of trained adapters (list, show, rename, delete, export, average, scale,
active)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import cyclopts
from cyclopts import Parameter
from rich.table import Table

from tooltune.cli import context

app = cyclopts.App(
    name="adapters", help="List, show, rename, delete, export, average and scale trained adapters."
)


def _registry():  # noqa: ANN202 - imported lazily so `tooltune --help` stays fast
    from tooltune.adapters.registry import AdapterRegistry

    return AdapterRegistry(context.workspace())


def _scores(scores: dict) -> str:
    parts = []
    for k, v in scores.items():
        parts.append(f"{k}={v:.3g}" if isinstance(v, int | float) else f"{k}={v}")
    return ", ".join(parts)


def _eval_scores(scores: dict) -> str:
    """``coding-tools 33%/33% n=12`` per suite (the entries run_suite_on_server records)."""
    parts = []
    for suite, entry in scores.items():
        overall = entry.get("overall") if isinstance(entry, dict) else None
        if isinstance(overall, dict) and {"native", "lenient"} <= overall.keys():
            n = f" n={entry['n']}" if "n" in entry else ""
            parts.append(f"{suite} {overall['native']:.0%}/{overall['lenient']:.0%}{n}")
        else:  # a score someone registered by hand
            parts.append(_scores({suite: entry}))
    return "; ".join(parts)


@app.command(name="list")
def list_(*, json: bool = False) -> None:
    """List registered adapters (newest last).

    Parameters
    ----------
    json
        Print the records as JSON instead of a table.
    """
    from tooltune.adapters.active import read_active

    records = _registry().list()
    if json:
        context.console.print_json(data=[r.model_dump(mode="json", exclude={"probe"}) for r in records])
        return
    active = read_active(context.workspace())
    # the name is what every other verb takes, so it never wraps; paths and hashes are cut to what
    # tells entries apart (`adapters show` has them whole)
    table = Table(title=f"adapters in {context.workspace().adapters}", caption="* served by `serve`")
    table.add_column("name", no_wrap=True)
    for col in ("base model", "created", "data", "val loss", "evals (native/lenient)"):
        table.add_column(col, overflow="fold")
    for r in records:
        mark = " *" if active is not None and active.adapter == r.name else ""
        m = r.train_metrics
        val = next((m[k] for k in ("best_val_loss", "last_val_loss", "val_loss") if k in m), None)
        table.add_row(
            r.name + mark,
            Path(r.base_model).name or r.base_model,
            r.created.strftime("%m-%d %H:%M"),
            (r.dataset_hash or "").removeprefix("sha256:")[:6],
            f"{val:.3f}" if isinstance(val, int | float) else "",
            _eval_scores(r.eval_scores),
        )
    context.console.print(table)
    if not records:
        context.console_err.print("no adapters yet: train one with `tooltune train`")


@app.command
def show(name: str, *, json: bool = False) -> None:
    """Show everything recorded about one adapter.

    Parameters
    ----------
    name
        Registry name of the adapter.
    json
        Print the full tooltune.json record.
    """
    registry = _registry()
    record = registry.get(name)
    if json:
        context.console.print_json(record.model_dump_json())
        return
    table = Table(show_header=False, title=f"adapter {name}")
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = {
        "path": str(registry.path(name)),
        "base model": f"{record.base_model} ({record.base_model_fingerprint})",
        "adapter fingerprint": record.adapter_fingerprint,
        "created": record.created.isoformat(timespec="seconds"),
        "run": record.run_id or "",
        "dataset": record.dataset_hash or "",
        "train config": _scores(record.train_config),
        "train metrics": _scores(record.train_metrics),
        "eval scores": _eval_scores(record.eval_scores),
        "versions": _scores(record.versions),
        "probe": (
            f"{'distinguishes' if record.probe.distinguishes else 'does NOT distinguish'} base/adapter "
            + (
                f"(max Δlogprob {record.probe.distance:.3g})"
                if record.probe.distance < 1e9
                else "(different top tokens)"
            )
            if record.probe
            else "not computed yet (computed at first switch)"
        ),
    }
    for k, v in rows.items():
        table.add_row(k, v)
    context.console.print(table)


@app.command
def delete(name: str, *, force: bool = False) -> None:
    """Delete an adapter from the registry.

    Parameters
    ----------
    name
        Registry name of the adapter.
    force
        Delete even if it is the workspace's active adapter.
    """
    _registry().delete(name, force=force)
    context.console.print(f"deleted {name}")


@app.command
def rename(old: str, new: str) -> None:
    """Rename an adapter (the active selection follows).

    Parameters
    ----------
    old
        Current name.
    new
        New name (letters, digits, '.', '_', '-').
    """
    _registry().rename(old, new)
    context.console.print(f"renamed {old} → {new}")


@app.command
def export(name: str, dest: Annotated[Path, Parameter()]) -> None:
    """Export an adapter as a folder or a .tar.gz usable with `mlx_lm.generate --adapter-path`.

    Parameters
    ----------
    name
        Registry name of the adapter.
    dest
        New folder, or a path ending in .tar.gz / .tgz.
    """
    out = _registry().export(name, dest)
    context.console.print(f"exported {name} → {out}")


@app.command
def average(
    names: list[str],
    *,
    name: str,
    weights: Annotated[list[float] | None, Parameter(consume_multiple=True)] = None,
    strength: float = 1.0,
    overwrite: bool = False,
) -> None:
    """Register a new adapter that is the weighted mean of the named adapters' weight changes.

    Runs of one recipe with different seeds differ by several eval cases; their average keeps what
    they agree on. Exact: the result is one LoRA whose rank is the sum of theirs. Evaluate it like any
    other adapter (`tooltune eval --adapter NAME`).

    Parameters
    ----------
    names
        Two or more registered LoRA adapters of the same base model, on the same layers (or one, with
        a strength other than 1).
    name
        Registry name of the new adapter.
    weights
        One weight per adapter (default: equal weights summing to 1).
    strength
        Multiplies the mean change: below 1 turns the adapter down toward the base model.
    overwrite
        Replace an existing adapter of that name.
    """
    from tooltune.adapters.average import average_adapters

    record = average_adapters(
        _registry(), names, name, weights=weights, strength=strength, overwrite=overwrite
    )
    context.console.print(
        f"registered {record.name}: average of {', '.join(names)} "
        f"(weights {', '.join(f'{x:g}' for x in record.train_config['weights'])}, "
        f"strength {record.train_config['strength']:g}, rank {record.train_config['rank']})"
    )


@app.command
def scale(source: str, *, strength: float, name: str, overwrite: bool = False) -> None:
    """Register a copy of an adapter with its weight change multiplied by a strength.

    Below 1 the adapter is turned down toward the base model; on the BFCL benchmark that shifted
    answers from calls toward text (see the README's results). Evaluate it like any other adapter.

    Parameters
    ----------
    source
        A registered LoRA adapter.
    strength
        Factor for its weight change (e.g. 0.7); positive.
    name
        Registry name of the new adapter.
    overwrite
        Replace an existing adapter of that name.
    """
    from tooltune.adapters.average import average_adapters

    record = average_adapters(_registry(), [source], name, strength=strength, overwrite=overwrite)
    context.console.print(
        f"registered {record.name}: {source} at strength {record.train_config['strength']:g} "
        f"(rank {record.train_config['rank']})"
    )


@app.command
def active(*, json: bool = False) -> None:
    """Show the workspace's active selection (what `tooltune serve` starts with).

    Parameters
    ----------
    json
        Print active.json as JSON.
    """
    from tooltune.adapters.active import read_active

    selection = read_active(context.workspace())
    if json:
        context.console.print_json(selection.model_dump_json() if selection else "null")
        return
    if selection is None:
        context.console.print("no active selection yet (the default model is served without an adapter)")
        return
    table = Table(show_header=False, title="active")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("model", f"{selection.model} ({selection.model_fingerprint})")
    table.add_row("adapter", selection.adapter or "baseline (no adapter)")
    table.add_row("verified", selection.updated.isoformat(timespec="seconds"))
    context.console.print(table)
