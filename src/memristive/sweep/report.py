"""``memristive report DIR``: a table and plots across a sweep's grid.

Every point's metrics are flattened: nested mappings become dotted names; a list of records (like
the ``points`` list of the ``defects`` experiment) becomes its own long table and, per record, columns
``name[first_field=value].field``. Written to ``DIR/report/``:

* ``summary.csv`` — one row per point: the axis values, status and every scalar metric;
* ``<list>.csv`` — the long tables (one row per point and record);
* ``aggregate.csv`` — with a ``seed`` axis: mean, std and count over seeds of every numeric metric;
* ``<metric>.png`` — each chosen metric against the x axis (the first numeric axis unless
  ``sweep.report.x`` says otherwise), one line per combination of the other axes, mean ± std over
  seeds; ``<list>.png`` — a long table's ``mean`` against its first field, one line per point group;
* ``summary.json`` — all of the above as data.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..io import atomic_write_bytes, csv_bytes
from .store import SweepStore

__all__ = ["make_report", "flatten_metrics", "format_table"]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _cell(v: Any) -> Any:
    return v if v is None or isinstance(v, (int, float, str, bool)) else json.dumps(v)


def flatten_metrics(metrics: Any, prefix: str = "") -> tuple[dict, dict]:
    """``(scalars, tables)`` from a metrics mapping (see the module docstring)."""
    scalars: dict[str, Any] = {}
    tables: dict[str, list[dict]] = {}
    if not isinstance(metrics, dict):
        return ({prefix or "value": _cell(metrics)}, tables)
    for k, v in metrics.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            s, t = flatten_metrics(v, name)
            scalars.update(s)
            tables.update(t)
        elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            recs = [flatten_metrics(r)[0] for r in v]
            tables[name] = recs
            first = next(iter(recs[0]), None)
            for r in recs:
                label = f"{first}={r.get(first)}" if first is not None else ""
                for f, val in r.items():
                    if f != first and _is_num(val):
                        scalars[f"{name}[{label}].{f}"] = val
        elif isinstance(v, list):
            if len(v) <= 20:
                scalars[name] = json.dumps(v)
        else:
            scalars[name] = _cell(v)
    return scalars, tables


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _lab(v: Any) -> str:
    return "null" if v is None else _fmt(v)


def format_table(rows: list[dict], columns: list[str], max_width: int = 28) -> str:
    """A plain-text table (for the terminal). Headers are never cut; cells longer than ``max_width``
    end in "…"."""
    cut = lambda s: s if len(s) <= max_width else s[: max_width - 1] + "…"  # noqa: E731
    cells = [[cut(_fmt(r.get(c))) for c in columns] for r in rows]
    heads = list(columns)
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    line = lambda xs: "  ".join(x.ljust(w) for x, w in zip(xs, widths))  # noqa: E731
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_")[:80] or "metric"


def _stats(vals: list[float]) -> tuple[float, float, int]:
    n = len(vals)
    m = sum(vals) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
    return m, sd, n


def _choose_metrics(rows: list[dict], metric_cols: list[str], wanted: list[str] | None) -> list[str]:
    if wanted:
        missing = [m for m in wanted if m not in metric_cols]
        if missing:
            from ..config import ConfigError

            raise ConfigError(f"report metrics {missing} not found; available: {metric_cols[:40]}")
        return list(wanted)
    numeric = [c for c in metric_cols if any(_is_num(r.get(c)) for r in rows)]
    varying = [c for c in numeric if len({r.get(c) for r in rows if r.get("status") == "done"}) > 1] or numeric
    top = [c for c in varying if "." not in c and "[" not in c]
    means = [c for c in varying if c.endswith(".mean") and c not in top]
    chosen = (top + means)[:8]
    return chosen or varying[:4]


def make_report(path: str | Path, x: str | None = None, metrics: list[str] | None = None,
                progress: bool = False) -> dict:
    """Build the report of sweep folder ``path``; returns its data (rows, aggregate, files, text)."""
    store = SweepStore(path)
    decl = store.declaration()
    axes: list[str] = decl.get("axes", [])
    spec = decl.get("spec", {})
    rep_cfg = spec.get("report") or {}
    x = x or rep_cfg.get("x")
    metrics = metrics or rep_cfg.get("metrics")
    out_dir = store.path / "report"
    rows, tables, metric_cols = [], {}, []
    for pt in decl["points"]:
        rec = store.record(pt["key"])
        row = OrderedDict(point=pt["index"])
        for a in axes:
            row[a] = _cell(pt["values"].get(a))
        if rec is None:
            fail = store.failure(pt["key"])
            row["status"] = "failed" if fail else "pending"
            if fail:
                row["error"] = str(fail.get("error", ""))[:200]
        else:
            row["status"] = "done"
            row["wall_s"] = rec.get("wall_s")
            scal, tabs = flatten_metrics(rec.get("metrics", {}))
            for k, v in scal.items():
                if k not in metric_cols:
                    metric_cols.append(k)
                row[k] = v
            for name, recs in tabs.items():
                tables.setdefault(name, []).extend(
                    {"point": pt["index"], **{a: _cell(pt["values"].get(a)) for a in axes}, **r} for r in recs)
        row["key"] = pt["key"]
        rows.append(row)
    files = []

    def write(name: str, data: bytes) -> None:
        atomic_write_bytes(out_dir / name, data)
        files.append(str(out_dir / name))

    write("summary.csv", csv_bytes(rows))
    for name, recs in tables.items():
        write(f"{_safe(name)}.csv", csv_bytes(recs))
    # aggregate over seeds
    group_axes = [a for a in axes if a != "seed"]
    done = [r for r in rows if r["status"] == "done"]
    numeric_cols = [c for c in metric_cols if any(_is_num(r.get(c)) for r in done)]
    aggregate = []
    if "seed" in axes and done:
        groups: "OrderedDict[tuple, list[dict]]" = OrderedDict()
        for r in done:
            groups.setdefault(tuple(json.dumps(r.get(a)) for a in group_axes), []).append(r)
        for _, rs in groups.items():
            agg = OrderedDict((a, rs[0].get(a)) for a in group_axes)
            agg["seeds"] = len(rs)
            for c in numeric_cols:
                vals = [r[c] for r in rs if _is_num(r.get(c))]
                if vals:
                    m, sd, n = _stats(vals)
                    agg[f"{c} mean"], agg[f"{c} std"] = m, sd
            aggregate.append(agg)
        write("aggregate.csv", csv_bytes(aggregate))
    chosen = _choose_metrics(rows, metric_cols, metrics) if done else []
    plots = _plots(rows, tables, axes, chosen, x, write) if done else []
    cols = ["point"] + axes + ["status"] + chosen[:6]
    text = format_table(rows, cols)
    n_done = len(done)
    n_failed = sum(r["status"] == "failed" for r in rows)
    summary = {"path": str(store.path), "experiment": decl.get("experiment"), "axes": axes, "points": len(rows),
               "done": n_done, "failed": n_failed, "pending": len(rows) - n_done - n_failed, "metrics": chosen,
               "rows": rows, "aggregate": aggregate, "tables": list(tables), "plots": plots, "files": files}
    write("summary.json", json.dumps(summary, indent=1, default=str).encode())
    summary["text"] = text
    return summary


def _x_axis(rows: list[dict], axes: list[str], x: str | None) -> str | None:
    if x:
        if x not in axes:
            from ..config import ConfigError

            raise ConfigError(f"report x={x!r}: not a sweep axis; axes are {axes}")
        return x
    for a in axes:
        if a != "seed" and all(_is_num(r.get(a)) for r in rows if r.get(a) is not None) and any(
                r.get(a) is not None for r in rows):
            return a
    others = [a for a in axes if a != "seed"]
    return others[0] if others else None


def _plots(rows, tables, axes, metrics, x, write) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "done"]
    xa = _x_axis(done, axes, x)
    line_axes = [a for a in axes if a not in (xa, "seed")]
    made = []

    def series(rs: list[dict], ycol: str, xcol: str | None):
        """{line label: [(x, mean, std)]} with the mean/std over seeds."""
        lines: "OrderedDict[str, OrderedDict]" = OrderedDict()
        for r in rs:
            if not _is_num(r.get(ycol)):
                continue
            lab = ", ".join(f"{a}={_lab(r.get(a))}" for a in line_axes) or ycol
            xv = r.get(xcol) if xcol else 0
            lines.setdefault(lab, OrderedDict()).setdefault(json.dumps(xv), (xv, []))[1].append(r[ycol])
        out = {}
        for lab, pts in lines.items():
            out[lab] = [(xv, *_stats(vals)[:2]) for xv, vals in pts.values()]
        return out

    for m in metrics:
        ser = series(done, m, xa)
        if not ser:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        cats = not all(_is_num(p[0]) for s in ser.values() for p in s)
        labels = []
        for lab, pts in ser.items():
            xs = [p[0] for p in pts]
            if cats:
                for v in xs:
                    if json.dumps(v) not in labels:
                        labels.append(json.dumps(v))
                xs = [labels.index(json.dumps(v)) for v in xs]
            ax.errorbar(xs, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                        label=lab if len(ser) > 1 or line_axes else None)
        if cats:
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
        ax.set_xlabel(xa or "point")
        ax.set_ylabel(m)
        seeds = "seed" in axes
        ax.set_title(f"{m}" + (" (mean ± std over seeds)" if seeds else ""), fontsize=10)
        ax.grid(alpha=0.3)
        if len(ser) > 1:
            ax.legend(fontsize=7)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        name = f"{_safe(m)}.png"
        write(name, buf.getvalue())
        made.append(name)
    # long tables: "mean" (or the first numeric field) against the first field, one line per axis combo
    for tname, recs in tables.items():
        fields = [k for k in recs[0] if k not in ("point", *axes)]
        if len(fields) < 2 or not all(_is_num(r.get(fields[0])) for r in recs):
            continue
        ycol = "mean" if "mean" in fields else next((f for f in fields[1:] if _is_num(recs[0].get(f))), None)
        if ycol is None:
            continue
        group = [a for a in axes if a != "seed"]
        lines: "OrderedDict[str, OrderedDict]" = OrderedDict()
        for r in recs:
            lab = ", ".join(f"{a}={_lab(r.get(a))}" for a in group) or tname
            lines.setdefault(lab, OrderedDict()).setdefault(r[fields[0]], []).append(r[ycol])
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for lab, pts in lines.items():
            xs = sorted(pts)
            st = [_stats(pts[v]) for v in xs]
            ax.errorbar(xs, [s[0] for s in st], yerr=[s[1] for s in st], marker="o", capsize=3, label=lab)
        ax.set_xlabel(f"{tname}: {fields[0]}")
        ax.set_ylabel(ycol)
        ax.set_title(f"{tname}.{ycol}" + (" (mean ± std over seeds)" if "seed" in axes else ""), fontsize=10)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=7)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        name = f"{_safe(tname)}.png"
        write(name, buf.getvalue())
        made.append(name)
    return made
