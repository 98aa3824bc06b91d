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
trials) so any method that writes (write-verify, in-situ training) can charge its writes to the
devices: ``wear.record(pulses)`` then ``g, stuck = wear.constrain(g)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .config import check

__all__ = ["Endurance", "endurance_factor", "endurance_window", "Wear"]


def endurance_factor(n: torch.Tensor, n_th: float, p: float) -> torch.Tensor:
    """``f(n) = 1`` for ``n ≤ n_th``, ``(n/n_th)^(−p)`` beyond."""
    return (n.clamp(min=n_th) / n_th).pow(-p)


def endurance_window(n: torch.Tensor, g_min: float, g_max: float, n_th: float, p: float,
                     g_c: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Conductance window ``(g_lo, g_hi)`` of devices after ``n`` writes."""
    g_c = 0.5 * (g_min + g_max) if g_c is None else g_c
    f = endurance_factor(n, n_th, p)
    return g_c - (g_c - g_min) * f, g_c + (g_max - g_c) * f


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


class Wear:
    """Write counts and failure thresholds of devices ``shape`` (e.g. ``(trials, rows, cols)``)."""

    def __init__(self, cfg: Endurance, g_min: float, g_max: float, shape, generator: torch.Generator | None = None,
                 dtype=torch.float32, device=None) -> None:
        self.cfg, self.g_min, self.g_max = cfg, g_min, g_max
        if cfg.g_c is not None:
            check(g_min <= cfg.g_c <= g_max, "endurance.g_c", cfg.g_c, f"must lie in the device range [{g_min}, {g_max}]")
        self.writes = torch.zeros(shape, dtype=dtype, device=device)
        xi = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        self.n_fail = cfg.fail_mean * torch.exp(cfg.fail_sigma * xi) if math.isfinite(cfg.fail_mean) else \
            torch.full(shape, math.inf, dtype=dtype, device=device)
        self.failed = torch.zeros(shape, dtype=torch.bool, device=device)
        self.stuck_value = torch.zeros(shape, dtype=dtype, device=device)

    def record(self, pulses: torch.Tensor) -> None:
        """Add ``|pulses|`` writes per device."""
        self.writes = self.writes + pulses.abs().to(self.writes.dtype)

    def window(self) -> tuple[torch.Tensor, torch.Tensor]:
        return endurance_window(self.writes, self.g_min, self.g_max, self.cfg.n_th, self.cfg.p, self.cfg.g_c)

    def constrain(self, g: torch.Tensor, g_before: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Conductances the worn devices can hold: clamped into their window; failed devices stuck.

        ``g_before`` (the state before the latest writes) is where ``stuck="current"`` devices stay.
        Returns ``(g, failed_mask)``."""
        lo, hi = self.window()
        g = torch.minimum(torch.maximum(g, lo), hi)
        newly = (self.writes >= self.n_fail) & ~self.failed
        if bool(newly.any()):
            if self.cfg.stuck == "hrs":
                val = torch.full_like(g, self.g_min)
            elif self.cfg.stuck == "lrs":
                val = torch.full_like(g, self.g_max)
            else:
                val = g_before if g_before is not None else g
            self.stuck_value = torch.where(newly, val.to(self.stuck_value.dtype), self.stuck_value)
            self.failed = self.failed | newly
        return torch.where(self.failed, self.stuck_value.to(g.dtype), g), self.failed
