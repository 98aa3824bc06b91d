"""The crossbar: programmed conductances with a leading Monte Carlo trial dimension.

``V_out = V_in · (G+ − G−) · R_s``  (inverting transimpedance amplifier with feedback ``R_s``; its
sign is folded in, so a positive weight gives a positive output).

All ``T`` trials are one batched tensor operation: conductances are ``(T, rows, cols)`` and inputs
``(B, rows)`` (shared by all trials) or ``(T, B, rows)`` (per trial, e.g. a later layer). Outputs are
always ``(T, B, cols)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..circuit.irdrop import LineResistance
from ..config import ConfigError, check
from ..devices import LinearDevice, preset
from ..nonideal import ReadNoise, build_nonidealities
from .mapping import Mapping, check_weights, conductances_to_weights, weights_to_conductances
from .periphery import Converter, Tiling, tile_counts


@dataclass
class CrossbarConfig:
    """Everything needed to turn a weight matrix into a simulated crossbar.

    ``device`` is a preset name (see ``memristive.devices.PRESETS``) or device parameters.
    ``nonidealities`` is a list of programming-time effects applied in order, e.g.
    ``[{kind: defect_percent, alpha: 0.1}]``; ``read_noise`` acts on every read.
    ``v_read`` is the input voltage that represents an input value of 1.
    ``line_resistance`` (ohms per wire segment) makes every read solve the tile's resistive network
    exactly (IR drop, see :mod:`memristive.circuit`); ``None`` is the ideal crossbar.
    """

    device: str | LinearDevice = "ti-alox-taox"
    mapping: Mapping = field(default_factory=Mapping)
    r_s: float = 1e3
    v_read: float = 0.2
    nonidealities: list[Any] = field(default_factory=list)
    read_noise: ReadNoise | None = None
    dac: Converter = field(default_factory=Converter)
    adc: Converter = field(default_factory=Converter)
    tile: Tiling | None = None
    line_resistance: LineResistance | None = None

    def __post_init__(self) -> None:
        if isinstance(self.device, str):
            self.device = preset(self.device)
        check(math.isfinite(self.r_s) and self.r_s > 0, "crossbar.r_s", self.r_s, "must be a positive resistance in ohms")
        check(math.isfinite(self.v_read) and self.v_read > 0, "crossbar.v_read", self.v_read, "must be a positive voltage")
        self.nonidealities = build_nonidealities(self.nonidealities)


def _make_generator(seed: int | None, device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else torch.seed())
    return gen


class Crossbar(nn.Module):
    """A programmed crossbar (one weight matrix), ``T`` Monte Carlo instances at once.

    Build it with :meth:`from_weights`. Conductances are buffers, so ``state_dict``/``torch.save``
    work; ``.to("cuda")`` moves the whole simulation.
    """

    def __init__(
        self,
        g_pos: torch.Tensor,
        g_neg: torch.Tensor,
        k: float,
        config: CrossbarConfig,
        stuck_pos: torch.Tensor | None = None,
        stuck_neg: torch.Tensor | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if g_pos.dim() != 3:
            raise ValueError(f"g_pos: expected (trials, rows, cols), got shape {tuple(g_pos.shape)}")
        self.config = config
        self.k = float(k)
        self.seed = int(seed)
        self.register_buffer("g_pos", g_pos)
        self.register_buffer("g_neg", g_neg)
        self.register_buffer("stuck_pos", stuck_pos if stuck_pos is not None else torch.zeros_like(g_pos, dtype=torch.bool))
        self.register_buffer("stuck_neg", stuck_neg if stuck_neg is not None else torch.zeros_like(g_neg, dtype=torch.bool))
        self._read_gen: torch.Generator | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_weights(
        cls,
        w: torch.Tensor,
        device: LinearDevice | str | None = None,
        mapping: Mapping | str | None = None,
        r_s: float | None = None,
        *,
        config: CrossbarConfig | None = None,
        trials: int = 1,
        seed: int | None = 0,
        nonidealities: list | None = None,
        **overrides,
    ) -> "Crossbar":
        """Program weights ``w`` (inputs × outputs) onto ``trials`` independent device instances.

        Keyword arguments override fields of ``config`` (e.g. ``read_noise=ReadNoise(0.02)``).
        """
        cfg = config if config is not None else CrossbarConfig()
        changes: dict[str, Any] = dict(overrides)
        if device is not None:
            changes["device"] = device
        if mapping is not None:
            changes["mapping"] = Mapping(scheme=mapping) if isinstance(mapping, str) else mapping
        if r_s is not None:
            changes["r_s"] = r_s
        if nonidealities is not None:
            changes["nonidealities"] = nonidealities
        if changes:
            import dataclasses

            unknown = set(changes) - {f.name for f in dataclasses.fields(CrossbarConfig)}
            if unknown:
                raise ConfigError(f"Crossbar.from_weights: unknown option(s) {sorted(unknown)}")
            cfg = dataclasses.replace(cfg, **changes)
        check(isinstance(trials, int) and trials >= 1, "trials", trials, "must be an integer >= 1")
        check_weights(w)
        xb = cls(
            torch.zeros(1, 1, 1, dtype=w.dtype, device=w.device),
            torch.zeros(1, 1, 1, dtype=w.dtype, device=w.device),
            1.0,
            cfg,
            seed=seed if seed is not None else 0,
        )
        xb.program(w, trials=trials, generator=_make_generator(seed, w.device))
        return xb

    def program(self, w: torch.Tensor, trials: int | None = None, generator: torch.Generator | None = None) -> None:
        """(Re)program the array with weights ``w``: mapping, device levels, then non-idealities."""
        check_weights(w)
        cfg = self.config
        dev = cfg.device
        trials = trials if trials is not None else self.trials
        gen = generator if generator is not None else _make_generator(self.seed, w.device)
        g_pos, g_neg, k = weights_to_conductances(w, dev.g_min, dev.g_max, cfg.mapping)
        if cfg.mapping.scheme == "reference":
            n_ct = tile_counts(w.shape[0], w.shape[1], "reference", cfg.tile)["col_tiles"]
            g_neg = g_neg.expand(-1, n_ct).contiguous()
        g_pos = dev.program(g_pos).expand(trials, -1, -1).contiguous()
        g_neg = dev.program(g_neg).expand(trials, -1, -1).contiguous()
        stuck_pos = torch.zeros_like(g_pos, dtype=torch.bool)
        stuck_neg = torch.zeros_like(g_neg, dtype=torch.bool)
        for effect in cfg.nonidealities:
            g_pos, s = effect.apply(g_pos, dev, gen)
            if s is not None:
                stuck_pos |= s
            g_neg, s = effect.apply(g_neg, dev, gen)
            if s is not None:
                stuck_neg |= s
        self.k = float(k)
        self.g_pos, self.g_neg = g_pos, g_neg
        self.stuck_pos, self.stuck_neg = stuck_pos, stuck_neg

    # ------------------------------------------------------------------ properties
    @property
    def trials(self) -> int:
        return self.g_pos.shape[0]

    @property
    def in_features(self) -> int:
        return self.g_pos.shape[1]

    @property
    def out_features(self) -> int:
        return self.g_pos.shape[2]

    @property
    def conductances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Programmed ``(G_pos, G_neg)`` in siemens, each ``(trials, rows, cols)``.

        For the reference scheme ``G_neg`` is the reference column(s) broadcast to every column.
        """
        return self.g_pos, self._g_neg_full()

    def _g_neg_full(self) -> torch.Tensor:
        if self.g_neg.shape[-1] == self.g_pos.shape[-1]:
            return self.g_neg
        return self._expand_ref(self.g_neg)  # reference scheme: one reference column per column tile

    def g_diff(self) -> torch.Tensor:
        """``G+ − G−`` per trial, ``(trials, rows, cols)``."""
        return self.g_pos - self._g_neg_full()

    def weights(self) -> torch.Tensor:
        """Effective weights the array holds, ``(trials, inputs, outputs)``."""
        return conductances_to_weights(self.g_pos, self._g_neg_full(), self.k)

    def counts(self) -> dict:
        """Cells and tiles of one device instance (see :func:`memristive.crossbar.tile_counts`)."""
        return tile_counts(self.in_features, self.out_features, self.config.mapping.scheme, self.config.tile)

    # ------------------------------------------------------------------ compute
    def _read_generator(self, device) -> torch.Generator:
        if self._read_gen is None or self._read_gen.device != torch.device(device):
            self._read_gen = _make_generator(self.seed + 7919, device)
        return self._read_gen

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_read_gen"] = None  # generators are not picklable; recreated from the seed
        state.pop("_derived", None)  # caches are rebuilt on demand
        return state

    def _cached(self, name: str, compute):
        """Tensors derived from the conductances (G+ − G−, noise variances, GEMM layouts), recomputed
        only when a conductance buffer changes (tracked by storage and in-place version counters)."""
        if self.g_pos.requires_grad or self.g_neg.requires_grad:
            return compute()
        # the cache holds the very tensors it was computed from (so their storage cannot be reused by
        # a replacement buffer) and their in-place version counters
        gp, gn = self.g_pos, self.g_neg
        cache = self.__dict__.setdefault("_derived", {})
        hit = cache.get(name)
        if hit is None or hit[0] is not gp or hit[1] is not gn or hit[2] != (gp._version, gn._version):
            hit = (gp, gn, (gp._version, gn._version), compute())
            cache[name] = hit
        return hit[3]

    def _read_g(self) -> tuple[torch.Tensor, str]:
        """The matrix a read multiplies the input voltages by, and its cache name: ``G+ − G−``, or with
        ``config.line_resistance`` the exact IR-drop matrix (:func:`memristive.circuit.effective_g_diff`)."""
        lr = self.config.line_resistance
        if lr is None or lr.ideal:
            return self._cached("g_diff", self.g_diff), "g_diff"
        from ..circuit.layout import effective_g_diff

        name = f"g_ir{lr!r}{self.config.mapping.scheme}{self.config.tile!r}"
        return self._cached(name, lambda: effective_g_diff(self.g_pos.detach(), self.g_neg.detach(),
                                                           self.config.mapping.scheme, self.config.tile, lr)), name

    def _partials(self, v: torch.Tensor, g: torch.Tensor, name: str = "") -> torch.Tensor:
        """Column sums per row-tile: ``(T, n_row_tiles, B, cols)`` (one tile when no per-tile ADC).

        Inputs shared by all trials (``v`` of shape ``(1, B, rows)``) run as one large GEMM against
        the trials' conductances laid side by side, ``(rows, T·cols)``.
        """
        tile = self.config.tile
        rows = g.shape[-2]
        T, cols = g.shape[0], g.shape[-1]
        if tile is None or self.config.adc.ideal or tile.rows >= rows:
            if v.shape[0] == 1 and T > 1:
                flat = self._cached("flat_" + name, lambda: g.permute(1, 0, 2).reshape(rows, T * cols)) if name else \
                    g.permute(1, 0, 2).reshape(rows, T * cols)
                out = (v[0] @ flat).view(v.shape[1], T, cols).transpose(0, 1)
                return out.unsqueeze(1)
            return torch.matmul(v, g).unsqueeze(1)
        n = math.ceil(rows / tile.rows)
        pad = n * tile.rows - rows
        if pad:
            v = torch.nn.functional.pad(v, (0, pad))
            g = torch.nn.functional.pad(g, (0, 0, 0, pad))
        vt = v.reshape(*v.shape[:-1], n, tile.rows).movedim(-2, -3)  # (T|1, n, B, tr)
        gt = g.reshape(g.shape[0], n, tile.rows, g.shape[-1])  # (T, n, tr, cols)
        return torch.matmul(vt, gt)

    def _read_noise(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Column-output noise with the exact distribution of independent per-cell read noise.

        A column sums Σ_i v_i·ε_ij with ε_ij ~ N(0, Var(G_ij)): Gaussian with variance Σ_i v_i²·Var(G_ij).
        ``"range"`` noise has the same variance on every cell, so the sum needs no matmul. The
        reference scheme's reference column is one physical device per row shared by the columns of a
        tile, so its noise is drawn once and shared (correlated across those columns), as in hardware.
        """
        rn, dev = self.config.read_noise, self.config.device
        gen = self._read_generator(like.device)
        ref = self.g_neg.shape[-1] != self.g_pos.shape[-1]
        if rn.mode == "range" and (self.config.tile is None or self.config.adc.ideal):
            sq = (v * v).sum(-1, keepdim=True).unsqueeze(1)  # (T|1, 1, B, 1)
            std_one = rn.sigma * dev.g_range * sq.sqrt()
            if not ref:
                return like.new_empty(like.shape).normal_(generator=gen) * (std_one * math.sqrt(2.0))
            noise = like.new_empty(like.shape).normal_(generator=gen) * std_one
            ref_noise = like.new_empty(like.shape[:-1] + (self.g_neg.shape[-1],)).normal_(generator=gen) * std_one
            return noise - self._expand_ref(ref_noise)
        vv = v * v
        if not ref:  # ε+ − ε− of independent devices: one Gaussian with the summed variance
            var = self._cached("var", lambda: rn.variance(self.g_pos, dev) + rn.variance(self.g_neg, dev))
            std = self._partials(vv, var, "var").clamp(min=0).sqrt()
            return torch.randn(std.shape, generator=gen, dtype=std.dtype, device=std.device) * std
        var_pos = self._cached("var_pos", lambda: rn.variance(self.g_pos, dev))
        std = self._partials(vv, var_pos, "var_pos").clamp(min=0).sqrt()
        noise = torch.randn(std.shape, generator=gen, dtype=std.dtype, device=std.device) * std
        var_neg = self._cached("var_neg", lambda: rn.variance(self.g_neg, dev))
        std_n = self._partials(vv, var_neg, "var_neg").clamp(min=0).sqrt()
        noise_n = torch.randn(std_n.shape, generator=gen, dtype=std_n.dtype, device=std_n.device) * std_n
        return noise - self._expand_ref(noise_n)

    def _expand_ref(self, t: torch.Tensor) -> torch.Tensor:
        n_ct = t.shape[-1]
        per = math.ceil(self.out_features / n_ct)
        idx = torch.arange(self.out_features, device=t.device) // per
        return t[..., idx]

    def _as_trials(self, v: torch.Tensor, name: str) -> torch.Tensor:
        if v.dim() == 1:
            v = v.unsqueeze(0)
        if v.dim() == 2:
            v = v.unsqueeze(0)
        if v.dim() != 3:
            raise ValueError(f"{name}: expected (batch, {self.in_features}) or (trials, batch, {self.in_features}), got {tuple(v.shape)}")
        if v.shape[-1] != self.in_features:
            raise ValueError(f"{name}: last dimension is {v.shape[-1]}, the crossbar has {self.in_features} rows")
        if v.shape[0] not in (1, self.trials):
            raise ValueError(f"{name}: {v.shape[0]} trials given, the crossbar holds {self.trials}")
        return v

    def mvm(self, v_in: torch.Tensor) -> torch.Tensor:
        """Output voltages ``V_out = V_in · (G+ − G−) · R_s`` with read noise and ADC, ``(T, B, cols)``."""
        v = self._as_trials(v_in, "v_in").to(self.g_pos.dtype)
        cfg = self.config
        partial = self._partials(v, *self._read_g())
        if cfg.read_noise is not None and cfg.read_noise.sigma > 0:
            partial = partial + self._read_noise(v, partial)
        partial = partial * cfg.r_s
        if not cfg.adc.ideal:
            partial = cfg.adc(partial, getattr(self, "_adc_range", None))
        return partial.sum(dim=1) if partial.shape[1] > 1 else partial.squeeze(1)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W`` in weight units, through DAC, crossbar and ADC: ``(T, B, outputs)``."""
        cfg = self.config
        x = self._as_trials(x, "x")
        if not torch.isfinite(x.detach().sum()) and not torch.isfinite(x).all():  # cheap check first
            raise ValueError("x: input contains NaN or infinite values")
        x = cfg.dac(x)
        v = x * cfg.v_read
        return self.mvm(v) / (cfg.v_read * cfg.r_s * self.k)

    def __matmul__(self, x):  # not used for x @ xb; provided for AnalogCore-like xb @ ... symmetry
        return NotImplemented

    def __rmatmul__(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ xb`` is ``xb.matmul(x)``."""
        return self.matmul(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.matmul(x)

    @torch.no_grad()
    def calibrate_adc(self, x: torch.Tensor, percentile: float = 100.0) -> float:
        """Fix the ADC full scale (volts) from sample inputs: the given percentile of |partial sums|."""
        cfg = self.config
        v = cfg.dac(self._as_trials(x, "x")) * cfg.v_read
        partial = self._partials(v, *self._read_g()) * cfg.r_s
        a = partial.abs().flatten()
        rng = float(a.max()) if percentile >= 100 else float(torch.quantile(a[: 2**24].float(), percentile / 100))
        self._adc_range = max(rng, 1e-30)
        return self._adc_range

    def extra_repr(self) -> str:
        c = self.counts()
        return (
            f"inputs={self.in_features}, outputs={self.out_features}, trials={self.trials}, "
            f"scheme={self.config.mapping.scheme}, cells={c['cells']}, tiles={c['tiles']}"
        )
