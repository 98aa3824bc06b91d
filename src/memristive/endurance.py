"""Endurance: devices that degrade with the number of writes (window narrowing, then stuck).

The form follows the empirical metal-oxide RRAM endurance model of Lammie, Rahimi Azghadi and
Ielmini (Semicond. Sci. Technol. 36:065003, 2021; MemTorch ``endurance_retention_models/
empirical_metal_oxide_RRAM.py``): nothing changes up to a threshold number of cycles, after which
the low- and high-resistance states approach a common "stable" state as a power law in the cycle
count (their *gradual* mode), and a device may fail abruptly to a fixed state (their *sudden* mode).
In conductances, with ``n`` writes of a device and ``f(n) = 1`` for ``n ≤ n_th``,
``f(n) = (n/n_th)^(−p)`` beyond::

    g_hi(n) = g_c + (G_max − g_c)·f(n)          g_lo(n) = g_c − (g_c − G_min)·f(n)

(``g_c`` the convergence conductance, default the middle of the range): a device can only hold
conductances in ``[g_lo(n), g_hi(n)]``. Each device fails after ``n_fail`` writes, drawn once per device
as ``n_fail = fail_mean·exp(fail_sigma·ξ)`` (lognormal spread); a failed device is stuck at
``stuck`` (``"hrs"`` = G_min, ``"lrs"`` = G_max, ``"current"`` = where it was). Parameters are
illustrative defaults, not a fit to one device.

:class:`Wear` carries the per-device write counts and failure thresholds as tensors (batched over
trials) so any method that writes can charge its writes to the devices. Every writer does it through
:meth:`Wear.write` (``g = wear.write(g_before, g_after, pulses)``), the one place where the rule
lives: write-verify (:mod:`memristive.programming`), the calibration paper's in-situ training
(:mod:`memristive.methods.insitu`), DTGA (:mod:`memristive.methods.dtga`) and the analog optimizers
(:mod:`memristive.methods.analog`). A *write* is one programming pulse; a method without pulses (the
exact in-situ write model) charges one per device write. :func:`wear_stats` summarises a set of
:class:`Wear` for a method's results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from torch import nn

from .config import check

__all__ = ["Endurance", "endurance_factor", "endurance_window", "Wear", "wear_stats", "as_endurance"]


def endurance_factor(n: torch.Tensor, n_th: float, p: float) -> torch.Tensor:
    """``f(n) = 1`` for ``n ≤ n_th``, ``(n/n_th)^(−p)`` beyond."""
    return (n.clamp(min=n_th) / n_th).pow(-p)


def endurance_window(n: torch.Tensor, g_min, g_max, n_th: float, p: float,
                     g_c: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Conductance window ``(g_lo, g_hi)`` of devices after ``n`` writes (``g_min``/``g_max`` floats or
    tensors broadcastable with ``n``)."""
    g_c = 0.5 * (g_min + g_max) if g_c is None else g_c
    shrink = 1 - endurance_factor(n, n_th, p)  # 0 up to n_th: the window is [g_min, g_max] exactly
    return g_min + (g_c - g_min) * shrink, g_max - (g_max - g_c) * shrink


@dataclass
class Endurance:
    """Window narrowing after ``n_th`` writes (power law ``p``) and failure after ~``fail_mean`` writes."""

    n_th: float = 1e4
    p: float = 0.2
    g_c: float | None = None
    fail_mean: float = 1e6
    fail_sigma: float = 0.5
    stuck: Literal["hrs", "lrs", "current"] = "hrs"
    kind: Literal["endurance"] = "endurance"

    def __post_init__(self) -> None:
        check(math.isfinite(self.n_th) and self.n_th >= 1, "endurance.n_th", self.n_th, "must be >= 1 write")
        check(math.isfinite(self.p) and self.p >= 0, "endurance.p", self.p, "must be >= 0")
        check(self.fail_mean > 0, "endurance.fail_mean", self.fail_mean, "must be > 0 writes (inf = never fails)")
        check(math.isfinite(self.fail_sigma) and self.fail_sigma >= 0, "endurance.fail_sigma", self.fail_sigma,
              "must be >= 0")
        check(self.stuck in ("hrs", "lrs", "current"), "endurance.stuck", self.stuck, "must be 'hrs', 'lrs' or 'current'")
        if self.g_c is not None:
            check(math.isfinite(self.g_c) and self.g_c >= 0, "endurance.g_c", self.g_c, "must be a conductance >= 0")


def as_endurance(spec, key: str = "endurance") -> Endurance | None:
    """``None``, an :class:`Endurance`, or a mapping of its fields (validated, errors name ``key``)."""
    if spec is None or isinstance(spec, Endurance):
        return spec
    if isinstance(spec, dict):
        from .config import from_dict

        return from_dict(Endurance, spec, prefix=key)
    check(False, key, spec, "must be null, an Endurance or a mapping of its fields (n_th, p, g_c, fail_mean, ...)")


def _bound(value, shape: tuple, dtype, device):
    """A float stays a float; a tensor is expanded to ``shape`` (one value per device)."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=dtype, device=device).expand(shape).contiguous()
    return float(value)


class Wear(nn.Module):
    """Write counts and failure thresholds of devices ``shape`` (e.g. ``(trials, rows, cols)``).

    ``g_min``/``g_max``: the devices' range, floats or per-device tensors (broadcastable to ``shape``:
    device-to-device variation of the bounds). The failure thresholds are drawn with ``generator`` on
    the generator's own device and then moved to ``device``, so a CPU generator gives the same devices
    on CPU and CUDA. An ``nn.Module``: its state (``writes``, ``n_fail``, ``failed``, ``stuck_value``)
    moves with ``.to()`` and is saved with the ``state_dict()`` of a module that holds it.

    Every method that writes devices charges its writes through :meth:`write` (one place for the rule)::

        writes  ← writes + |pulses|
        G       ← clamp(G_after, g_lo(writes), g_hi(writes))   on the written devices (pulses ≠ 0)
                                                                 past n_th writes (up to n_th the
                                                                 device model alone says where it lands)
        failed  ← failed ∨ (written ∧ writes ≥ n_fail)          a newly failed device's stuck value is
                                                                 fixed now (G_min, G_max or G_before)
        G       ← stuck value                                    on every failed device

    Devices not written keep their conductance: the window limits what a write can reach, not what a
    device already holds.
    """

    def __init__(self, cfg: Endurance, g_min, g_max, shape, generator: torch.Generator | None = None,
                 dtype=torch.float32, device=None) -> None:
        super().__init__()
        shape = tuple(shape)
        self.cfg = cfg
        for name, value in (("g_min", g_min), ("g_max", g_max)):
            b = _bound(value, shape, dtype, device)
            if isinstance(b, torch.Tensor):
                self.register_buffer(name, b)
            else:
                setattr(self, name, b)
        if cfg.g_c is not None:
            lo = float(self.g_min.max()) if isinstance(self.g_min, torch.Tensor) else self.g_min
            hi = float(self.g_max.min()) if isinstance(self.g_max, torch.Tensor) else self.g_max
            check(lo <= cfg.g_c <= hi, "endurance.g_c", cfg.g_c, f"must lie in the device range [{lo:.4g}, {hi:.4g}]")
        self.register_buffer("writes", torch.zeros(shape, dtype=dtype, device=device))
        if math.isfinite(cfg.fail_mean):
            gen_device = generator.device if generator is not None else device
            xi = torch.randn(shape, generator=generator, dtype=dtype, device=gen_device).to(device)
            n_fail = cfg.fail_mean * torch.exp(cfg.fail_sigma * xi)
        else:
            n_fail = torch.full(shape, math.inf, dtype=dtype, device=device)
        self.register_buffer("n_fail", n_fail)
        self.register_buffer("failed", torch.zeros(shape, dtype=torch.bool, device=device))
        self.register_buffer("stuck_value", torch.zeros(shape, dtype=dtype, device=device))

    # ------------------------------------------------------------------ the rule
    def write(self, g_before: torch.Tensor, g_after: torch.Tensor, pulses: torch.Tensor, index=None) -> torch.Tensor:
        """Charge ``|pulses|`` writes and return what the devices hold after them (see the class doc).

        ``g_after`` is what the write would give on a fresh device. Without ``index`` the tensors have
        the devices' full ``shape``; with ``index`` they hold only the selected devices, ``index`` being a
        tuple of index tensors (as in ``t[index]``) or a 1-D tensor of flat positions (unique).
        """
        pulses = torch.as_tensor(pulses, dtype=g_after.dtype, device=g_after.device)
        hit = (pulses != 0).expand(g_after.shape)
        take = (lambda t: t) if index is None else (lambda t: _take(t, index, g_after.shape))
        writes = take(self.writes) + pulses.abs().to(self.writes.dtype)
        g, failed, stuck = self._land(g_after, g_before, hit, writes, take)
        if index is None:
            self.writes, self.failed, self.stuck_value = writes, failed, stuck
        else:
            for name, val in (("writes", writes), ("failed", failed), ("stuck_value", stuck)):
                _put(getattr(self, name), index, val)
        return g

    def _land(self, g_after, g_before, hit, writes, take):
        bound = lambda b: take(b) if isinstance(b, torch.Tensor) else b  # noqa: E731
        g_min, g_max = bound(self.g_min), bound(self.g_max)
        cfg = self.cfg
        lo, hi = endurance_window(writes, g_min, g_max, cfg.n_th, cfg.p, cfg.g_c)
        worn = hit & (writes > cfg.n_th)
        g = torch.where(worn, torch.minimum(torch.maximum(g_after, lo), hi), g_after)
        failed = take(self.failed)
        newly = hit & (writes >= take(self.n_fail)) & ~failed
        if cfg.stuck == "hrs":
            val = g_min
        elif cfg.stuck == "lrs":
            val = g_max
        else:
            val = g_before if g_before is not None else g_after
        val = torch.as_tensor(val, dtype=self.stuck_value.dtype, device=g.device)
        stuck = torch.where(newly, val, take(self.stuck_value))
        failed = failed | newly
        return torch.where(failed, stuck.to(g.dtype), g), failed, stuck

    # ------------------------------------------------------------------ earlier two-step API
    def record(self, pulses: torch.Tensor) -> None:
        """Add ``|pulses|`` writes per device (then :meth:`constrain`; :meth:`write` does both)."""
        self.writes = self.writes + pulses.abs().to(self.writes.dtype)

    def window(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g_lo, g_hi)`` of every device at its present write count."""
        return endurance_window(self.writes, self.g_min, self.g_max, self.cfg.n_th, self.cfg.p, self.cfg.g_c)

    def constrain(self, g: torch.Tensor, g_before: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every device treated as written: ``g`` clamped into its window (past ``n_th``), failed devices
        stuck (``g_before``, the state before the latest writes, is where ``stuck="current"`` devices
        stay). Returns ``(g, failed_mask)``."""
        hit = torch.ones_like(g, dtype=torch.bool)
        g, self.failed, self.stuck_value = self._land(g, g_before, hit, self.writes, lambda t: t)
        return g, self.failed

    def map_(self, fn) -> None:
        """Apply ``fn`` to every per-device tensor (e.g. a row permutation of the array)."""
        for name, buf in list(self.named_buffers(recurse=False)):
            setattr(self, name, fn(buf))

    def extra_repr(self) -> str:
        return f"shape={tuple(self.writes.shape)}, {self.cfg}"


def _take(t: torch.Tensor, index, shape) -> torch.Tensor:
    if isinstance(index, torch.Tensor):
        return t.reshape(-1).index_select(0, index).view(shape)
    return t[index]


def _put(t: torch.Tensor, index, val: torch.Tensor) -> None:
    if isinstance(index, torch.Tensor):
        t.view(-1).index_copy_(0, index, val.reshape(-1).to(t.dtype))
    else:
        t.index_put_(index, val.to(t.dtype))


def wear_stats(wears) -> dict | None:
    """Summary of the wear of a method's devices (``None`` entries skipped; ``None`` if none): pulses
    charged per device (mean, max), failed devices (count, fraction, per trial), and the mean worn
    window as a fraction of each device's range. Trials are the leading dimension of every ``Wear``."""
    wears = [w for w in wears if w is not None]
    if not wears:
        return None
    n = sum(w.writes.numel() for w in wears)
    total = sum(float(w.writes.double().sum()) for w in wears)
    failed = sum(int(w.failed.sum()) for w in wears)
    per_trial = sum(w.failed.flatten(1).sum(1).cpu() for w in wears) if wears[0].writes.dim() > 1 else None
    width = 0.0
    for w in wears:
        lo, hi = w.window()
        width += float(((hi - lo) / (torch.as_tensor(w.g_max) - torch.as_tensor(w.g_min))).double().sum())
    return {"devices": n, "pulses_per_device_mean": total / n,
            "pulses_per_device_max": max(float(w.writes.max()) for w in wears),
            "failed": failed, "failed_fraction": failed / n,
            "failed_per_trial": per_trial.tolist() if per_trial is not None else None,
            "window_fraction_mean": width / n}
