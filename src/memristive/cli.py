"""The ``memristive`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .config import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Simulate, train and deploy neural networks on memristor crossbar arrays.")
data_app = typer.Typer(help="Fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


@app.command("list")
def list_experiments() -> None:
    """Name every experiment with a one-line description."""
    from .experiments import discover

    reg = discover()
    width = max(len(n) for n in reg)
    for name in sorted(reg):
        typer.echo(f"{name.ljust(width)}  {reg[name].description}")


@app.command("run")
def run(
    name: str = typer.Argument(..., help="experiment name (see 'memristive list')"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML/TOML/JSON config file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default runs/NAME); re-running resumes"),
    trials: Optional[int] = typer.Option(None, "--trials", help="Monte Carlo trials"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed"),
    quick: bool = typer.Option(False, "--quick", help="reduced run (small data, few trials), under a minute"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override a config key: --set crossbar.r_s=2000"),
    show_config: bool = typer.Option(False, "--show-config", help="print the resolved config and exit"),
) -> None:
    """Run one experiment and write results.json, CSV and plots into its run folder."""
    import json

    from .config import to_dict
    from .experiments import discover
    from .experiments.runner import build_config, run_experiment

    reg = discover()
    if name not in reg:
        _fail(f"unknown experiment {name!r}; known: {', '.join(sorted(reg))}")
    overrides = list(set_)
    fields = {f for f in reg[name].config_cls.__dataclass_fields__}
    for key, val in (("trials", trials), ("seed", seed)):
        if val is not None:
            if key not in fields:
                _fail(f"experiment {name!r} has no '{key}' setting")
            overrides.append(f"{key}={val}")
    try:
        cfg = build_config(reg[name], str(config) if config else None, overrides, quick)
        if show_config:
            typer.echo(json.dumps(to_dict(cfg), indent=2))
            return
        results, folder = run_experiment(name, cfg, out, quick=quick)
    except ConfigError as exc:
        _fail(str(exc))
    except Exception as exc:  # data errors etc.: a message, not a traceback
        from .data import DataError

        if isinstance(exc, DataError):
            _fail(str(exc))
        raise
    typer.echo(f"\n{name}: finished in {results['timings']['total_s']:.1f} s")
    pngs = sorted(p.name for p in folder.path.glob("*.png"))
    typer.echo(f"results: {folder.path / 'results.json'}")
    for p in pngs:
        typer.echo(f"plot:    {folder.path / p}")


@data_app.command("fetch")
def data_fetch(names: List[str] = typer.Argument(..., help="mnist, fashion-mnist"),
               root: Optional[Path] = typer.Option(None, help="data folder")) -> None:
    """Make datasets available offline (see docs for sources)."""
    from .data import DataError, fetch

    for n in names:
        try:
            typer.echo(f"{n}: {fetch(n, root)}")
        except DataError as exc:
            _fail(str(exc))


@app.command("devices")
def devices() -> None:
    """List device presets."""
    from .devices import PRESETS, preset

    for name in sorted(PRESETS):
        d = preset(name)
        r_hi = 1 / d.g_min if d.g_min > 0 else float("inf")
        typer.echo(f"{name:16s} [{d.kind}] {d.name}: G {d.g_min:.3g}–{d.g_max:.3g} S (R {1 / d.g_max:.4g}–{r_hi:.4g} Ω)")


@app.command("sweep")
def sweep(
    config: Path = typer.Argument(..., help="experiment config with a 'sweep:' section (grid, seeds, trials)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="sweep folder (default runs/sweep-EXPERIMENT); re-running resumes"),
    executor: str = typer.Option("local", "--executor", "-e", help="local (process pool) or dask"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="parallel points (local pool / LocalCluster size)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per point (default cores // workers)"),
    quick: Optional[bool] = typer.Option(None, "--quick/--full", help="start every point from the experiment's --quick settings"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override a base config key: --set n_test=2000"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the points (and which are finished) and exit"),
) -> None:
    """Run (or resume) a grid of experiment runs; each point is saved atomically as it finishes."""
    from .sweep import load_sweep, plan, run_sweep

    try:
        spec = load_sweep(config, quick=quick, overrides=list(set_))
        folder = out or Path("runs") / f"sweep-{spec.experiment}{'-quick' if spec.quick else ''}"
        if dry_run:
            rows = plan(spec, folder)
            for p, done in rows:
                typer.echo(f"{p.index:4d}  {'done   ' if done else 'pending'}  {p.key}  {p.label}")
            typer.echo(f"{len(rows)} point(s), {sum(d for _, d in rows)} finished; folder {folder}")
            return
        outcome = run_sweep(spec, folder, executor=executor, scheduler=scheduler, workers=workers, threads=threads)
    except ConfigError as exc:
        _fail(str(exc))
    rep = outcome.report or {}
    if rep.get("text"):
        typer.echo(rep["text"])
    typer.echo(f"\n{outcome.total} point(s): {outcome.skipped} already finished, {outcome.finished} run now, "
               f"{len(outcome.failed)} failed; folder {outcome.path}")
    if rep.get("files"):
        typer.echo(f"report: {outcome.path / 'report'}")
    if outcome.failed:
        typer.secho("failed points are retried when you re-run the same command; errors are in "
                    f"{outcome.path / 'failed'}", fg="yellow", err=True)
        raise typer.Exit(1)


@app.command("report")
def report(
    folder: Path = typer.Argument(..., help="a sweep folder"),
    x: Optional[str] = typer.Option(None, "--x", help="axis for the plots' x (default: the first numeric axis)"),
    metric: List[str] = typer.Option([], "--metric", "-m", help="metric(s) to tabulate and plot (flattened names)"),
) -> None:
    """Summary table (CSV + terminal) and plots across a sweep's grid, in FOLDER/report."""
    from .sweep import make_report

    try:
        rep = make_report(folder, x=x, metrics=list(metric) or None)
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(rep["text"])
    typer.echo(f"\n{rep['points']} point(s): {rep['done']} done, {rep['failed']} failed, {rep['pending']} pending")
    typer.echo(f"report: {Path(folder) / 'report'} ({', '.join(Path(f).name for f in rep['files'])})")


@app.command("cost")
def cost(
    model_or_config: str = typer.Argument(..., help="mnist-mlp, vgg8, a saved model (.pt) or a cost spec (.yaml)"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override a spec key: --set arch.cols_per_adc=4"),
    tech: Optional[str] = typer.Option(None, "--tech", help="technology preset name or YAML file (configs/tech-*.yaml)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write the full cost as JSON"),
    program: bool = typer.Option(False, "--program", help="also cost one-shot write-verify programming"),
    show_config: bool = typer.Option(False, "--show-config", help="print the resolved spec and exit"),
) -> None:
    """Per-layer area, energy and latency of a model on crossbars, and totals (first-order model)."""
    from .cli_cost import cost_command

    cost_command(model_or_config, list(set_), tech, out, program, show_config, _fail)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.secho("interrupted; re-run the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
