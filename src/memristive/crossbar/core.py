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
from ..config import ConfigError, check, from_dict, to_dict
from .. import programming as _write_verify_effect  # noqa: F401  (registers the write_verify effect)
from ..devices import Device, device_from_spec
from ..drift import TimeEffect, build_time_effect
from ..nonideal import Effect, ReadNoise, build_nonidealities
from .mapping import Mapping, check_weights, mapping_from_spec
from .periphery import Converter, Tiling


@dataclass
class CrossbarConfig:
    """Everything needed to turn a weight matrix into a simulated crossbar.

    ``memristor`` is the device model: a preset name (``memristive devices`` lists them), parameters
    (``{kind: linear, r_on: 1e3, r_off: 12e3}``, ``{preset: ti-alox-taox, levels: 16}``) or a
    :class:`~memristive.devices.Device`. ``mapping`` is ``differential`` (offset pairs), ``balanced`` or
    ``reference`` (or ``{kind: ..., w_max: ...}``). ``nonidealities`` is a list of programming-time
    effects applied in order, e.g. ``[{kind: defect_percent, alpha: 0.1}]``; ``read_noise`` acts on
    every read. ``v_read`` is the input voltage that represents an input value of 1.
    ``line_resistance`` (ohms per wire segment) makes every read solve the tile's resistive network
    exactly (IR drop, see :mod:`memristive.circuit`); ``None`` is the ideal crossbar.
    ``time_effect`` (e.g. ``{kind: pcm_drift}``, ``{kind: rram_retention, sigma: 0.01}``; see
    :mod:`memristive.drift`) draws its per-device parameters once at programming and lets
    :meth:`Crossbar.at` read the array ``t`` seconds later.
    """

    memristor: Device = "ti-alox-taox"  # type: ignore[assignment]
    mapping: Mapping = "differential"  # type: ignore[assignment]
    r_s: float = 1e3
    v_read: float = 0.2
    nonidealities: list[Effect] = field(default_factory=list)
    read_noise: ReadNoise | None = None
    dac: Converter = field(default_factory=Converter)
    adc: Converter = field(default_factory=Converter)
    tile: Tiling | None = None
    line_resistance: LineResistance | None = None
    time_effect: TimeEffect | None = None

    __renamed__ = {"device": "the memristor model is 'memristor' (e.g. crossbar.memristor=ti-alox-taox); "
                             "'device' means a torch device in memristive, as in torch"}

    def __post_init__(self) -> None:
        self.memristor = device_from_spec(self.memristor, "crossbar.memristor")
        self.mapping = mapping_from_spec(self.mapping, "crossbar.mapping")
        for key in ("r_s", "v_read"):
            val = getattr(self, key)
            check(isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val) and val > 0,
                  f"crossbar.{key}", val, "must be a positive finite number (" + ("ohms)" if key == "r_s" else "volts)"))
        self.nonidealities = build_nonidealities(self.nonidealities, "crossbar.nonidealities")
        for key, tp in (("read_noise", ReadNoise), ("dac", Converter), ("adc", Converter), ("tile", Tiling),
                        ("line_resistance", LineResistance)):
            val = getattr(self, key)
            if val is not None and not isinstance(val, tp):
                if isinstance(val, dict):
                    setattr(self, key, from_dict(tp, val, prefix=f"crossbar.{key}"))
                else:
                    raise ConfigError(f"crossbar.{key}={val!r}: expected a {tp.__name__} or a mapping of its fields")
        if self.time_effect is not None:
            self.time_effect = build_time_effect(self.time_effect, "crossbar.time_effect")
        check(self.dac is not None and self.adc is not None, "crossbar.dac/adc", (self.dac, self.adc),
              "use an ideal converter ({bits: null}) instead of null")
        check_read = getattr(self.memristor, "check_read_voltage", None)
        if check_read is not None:
            check_read(self.v_read, "crossbar.v_read")


def _make_generator(seed: int | None, device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else torch.seed())
    return gen


def check_seed(seed: Any, key: str = "seed") -> int:
    """A seed is an integer in ``[0, 2^63)``."""
    check(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63, key, seed,
          "must be an integer in [0, 2^63)")
    return int(seed)


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
        self.seed = check_seed(seed)
        self.register_buffer("g_pos", g_pos)
        self.register_buffer("g_neg", g_neg)
        self.register_buffer("stuck_pos", stuck_pos if stuck_pos is not None else torch.zeros_like(g_pos, dtype=torch.bool))
        self.register_buffer("stuck_neg", stuck_neg if stuck_neg is not None else torch.zeros_like(g_neg, dtype=torch.bool))
        # the mapping scale k and the ADC full scale set by calibrate_adc are state too (0: not set)
        self.register_buffer("scale", torch.tensor(float(k), dtype=torch.float64))
        self.register_buffer("adc_range", torch.tensor(0.0, dtype=torch.float64))
        self._k = float(k)
        self._adc_r: float | None = None
        self._read_gen: torch.Generator | None = None
        self.time = 0.0  # seconds since programming the conductances are at (see at())

    # ------------------------------------------------------------------ state
    @property
    def k(self) -> float:
        """Conductance per unit weight of the mapping (siemens per weight unit)."""
        return self._k

    @property
    def memristor(self) -> Device:
        return self.config.memristor

    @property
    def mapping(self) -> Mapping:
        return self.config.mapping

    def get_extra_state(self) -> dict:
        return {"config": to_dict(self.config), "seed": self.seed, "time": self.time}

    def set_extra_state(self, state: dict) -> None:
        mine = to_dict(self.config)
        saved = state.get("config")
        if isinstance(saved, dict) and "time_effect" not in saved:  # saved before time effects existed
            saved = {**saved, "time_effect": None}
        if saved != mine:
            diff = _first_difference(state.get("config"), mine)
            raise ConfigError(f"load_state_dict: the state was saved from a crossbar with a different config "
                              f"({diff}); convert with the same config, or build from the saved config")
        self.seed = check_seed(state.get("seed", self.seed))
        self.time = float(state.get("time", 0.0))
        self._read_gen = None
        self._sync()

    def _sync(self) -> None:
        """Python copies of the scalar state (read on every matmul)."""
        self._k = float(self.scale)
        r = float(self.adc_range)
        self._adc_r = r if r > 0 else None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_weights(
        cls,
        w: torch.Tensor,
        memristor: Device | str | dict | None = None,
        mapping: Mapping | str | dict | None = None,
        r_s: float | None = None,
        *,
        config: CrossbarConfig | None = None,
        trials: int = 1,
        seed: int | None = 0,
        nonidealities: list | None = None,
        device: torch.device | str | None = None,
        **overrides,
    ) -> "Crossbar":
        """Program weights ``w`` (inputs × outputs) onto ``trials`` independent device instances.

        ``memristor``/``mapping``/``r_s``/``nonidealities`` and other keyword arguments override fields
        of ``config`` (e.g. ``read_noise=ReadNoise(0.02)``). ``device`` is the torch device to simulate
        on (default: that of ``w``), as in torch.
        """
        import dataclasses

        cfg = config if config is not None else CrossbarConfig()
        if not isinstance(cfg, CrossbarConfig):
            raise ConfigError(f"config={cfg!r}: expected a CrossbarConfig (build one with "
                              "memristive.config.from_dict(CrossbarConfig, {...}))")
        changes: dict[str, Any] = dict(overrides)
        for key, val in (("memristor", memristor), ("mapping", mapping), ("r_s", r_s), ("nonidealities", nonidealities)):
            if val is not None:
                changes[key] = val
        if changes:
            unknown = set(changes) - {f.name for f in dataclasses.fields(CrossbarConfig)}
            if unknown:
                raise ConfigError(f"Crossbar.from_weights: unknown option(s) {sorted(unknown)}; valid: "
                                  f"{sorted(f.name for f in dataclasses.fields(CrossbarConfig))}")
            cfg = dataclasses.replace(cfg, **changes)
        check(isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1, "trials", trials,
              "must be an integer >= 1")
        if seed is not None:
            check_seed(seed)
        check_weights(w)
        if device is not None:
            device = _torch_device(device)
            w = w.to(device)
        xb = cls(
            torch.zeros(1, 1, 1, dtype=w.dtype, device=w.device),
            torch.zeros(1, 1, 1, dtype=w.dtype, device=w.device),
            1.0,
            cfg,
            seed=seed if seed is not None else 0,
        )
        xb.scale = xb.scale.to(w.device)
        xb.adc_range = xb.adc_range.to(w.device)
        xb.program(w, trials=trials, generator=_make_generator(seed, w.device))
        return xb

    def program(self, w: torch.Tensor, trials: int | None = None, generator: torch.Generator | None = None) -> None:
        """(Re)program the array with weights ``w``: mapping, device programming, then non-idealities."""
        check_weights(w)
        cfg = self.config
        dev, mapping = cfg.memristor, cfg.mapping
        trials = trials if trials is not None else self.trials
        gen = generator if generator is not None else _make_generator(self.seed, w.device)
        k, w_max = mapping.scale(w, dev)
        g_pos, g_neg = mapping.to_conductances(w, dev, k, w_max)
        n_neg = mapping.neg_columns(w.shape[0], w.shape[1], cfg.tile)
        if g_neg.shape[-1] != n_neg:
            g_neg = g_neg.expand(-1, n_neg).contiguous()
        g_pos = dev.program(g_pos, gen).expand(trials, -1, -1).contiguous()
        g_neg = dev.program(g_neg, gen).expand(trials, -1, -1).contiguous()
        stuck_pos = torch.zeros_like(g_pos, dtype=torch.bool)
        stuck_neg = torch.zeros_like(g_neg, dtype=torch.bool)
        for effect in cfg.nonidealities:
            g_pos, s = effect.apply(g_pos, dev, gen)
            if s is not None:
                stuck_pos |= s
            g_neg, s = effect.apply(g_neg, dev, gen)
            if s is not None:
                stuck_neg |= s
        self.scale.fill_(float(k))
        self.g_pos, self.g_neg = g_pos, g_neg
        self.stuck_pos, self.stuck_neg = stuck_pos, stuck_neg
        if cfg.time_effect is not None:  # the programmed state and the per-device time parameters
            for side, g in (("pos", g_pos), ("neg", g_neg)):
                self.register_buffer(f"g0_{side}", g.clone())  # not an alias: load_state_dict copies in place
                for name, val in cfg.time_effect.draw(g, dev, gen).items():
                    self.register_buffer(f"time_{side}_{name}", val)
        self.time = 0.0
        self._sync()

    @torch.no_grad()
    def at(self, t: float, generator: torch.Generator | None = None) -> "Crossbar":
        """Read the array ``t`` seconds after programming: the conductances become those of
        ``config.time_effect`` at ``t``, from the programmed ones and the per-device parameters drawn at
        programming (so every ``t`` ages the same instance). Fresh noise at ``t`` (the PCM model's 1/f
        noise) comes from ``generator`` (default: seeded by the crossbar's seed and ``t``). Aging starts
        from the conductances :meth:`program` left; writes made after it (in-situ training) are not
        aged. Returns self."""
        eff = self.config.time_effect
        if eff is None:
            raise ConfigError("Crossbar.at: crossbar.time_effect is not set (e.g. {kind: pcm_drift}); "
                              "nothing changes the conductances with time")
        check(isinstance(t, (int, float)) and math.isfinite(t) and t >= 0, "t", t, "must be a time >= 0 seconds")
        if generator is None:
            generator = _make_generator((self.seed * 1_000_003 + int(round(t * 1e3)) + 17) % 2**63, self.g_pos.device)
        bufs = dict(self.named_buffers(recurse=False, remove_duplicate=False))
        for side in ("pos", "neg"):
            pre = f"time_{side}_"
            state = {name[len(pre):]: val for name, val in bufs.items() if name.startswith(pre)}
            setattr(self, f"g_{side}", eff.at(bufs[f"g0_{side}"], state, float(t), self.memristor, generator))
        self.time = float(t)
        return self

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
        return self.g_pos, self.g_neg_full()

    def g_neg_full(self) -> torch.Tensor:
        """``G−`` for every weight column, ``(trials, rows, cols)`` (the reference column broadcast)."""
        if self.g_neg.shape[-1] == self.g_pos.shape[-1]:
            return self.g_neg
        return self._expand_ref(self.g_neg)  # reference scheme: one reference column per column tile

    def g_diff(self) -> torch.Tensor:
        """``G+ − G−`` per trial, ``(trials, rows, cols)``."""
        return self.g_pos - self.g_neg_full()

    def weights(self) -> torch.Tensor:
        """Effective weights the array holds, ``(trials, inputs, outputs)``."""
        return self.config.mapping.to_weights(self.g_pos, self.g_neg_full(), self.k)

    def counts(self) -> dict:
        """Cells and tiles of one device instance (see :meth:`memristive.crossbar.Mapping.tile_counts`)."""
        return self.config.mapping.tile_counts(self.in_features, self.out_features, self.config.tile)

    # ------------------------------------------------------------------ compute
    def _read_generator(self, device) -> torch.Generator:
        if self._read_gen is None or self._read_gen.device != torch.device(device):
            self._read_gen = _make_generator(self.seed + 7919, device)
        return self._read_gen

    def read_noise_state(self) -> torch.Tensor | None:
        """The read-noise generator's state (``None`` before the first noisy read). With
        :meth:`set_read_noise_state`, a probe read leaves the noise of later reads unchanged."""
        return None if self._read_gen is None else self._read_gen.get_state()

    def set_read_noise_state(self, state: torch.Tensor | None) -> None:
        """Restore a state from :meth:`read_noise_state` (``None``: as freshly programmed)."""
        if state is None:
            self._read_gen = None
        else:
            self._read_generator(self.g_pos.device).set_state(state)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_read_gen"] = None  # generators are not picklable; recreated from the seed
        state.pop("_derived", None)  # caches are rebuilt on demand
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "_k" not in state:  # pickled before the scale became state
            self._sync()

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

    def read_matrix(self) -> torch.Tensor:
        """What a read multiplies the input voltages by, ``(trials, inputs, outputs)``: ``G+ − G−``, or
        with ``config.line_resistance`` the exact IR-drop matrix (:func:`memristive.circuit.effective_g_diff`);
        cached until the conductances change."""
        return self._read_g()[0]

    def _read_g(self) -> tuple[torch.Tensor, str]:
        lr = self.config.line_resistance
        if lr is None or lr.ideal:
            return self._cached("g_diff", self.g_diff), "g_diff"
        from ..circuit.layout import effective_g_diff

        scheme = self.config.mapping.layout
        name = f"g_ir{lr!r}{scheme}{self.config.tile!r}"
        return self._cached(name, lambda: effective_g_diff(self.g_pos.detach(), self.g_neg.detach(),
                                                           scheme, self.config.tile, lr)), name

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
            if v.shape[0] == 1 and T == 1:
                return (v[0] @ g[0]).unsqueeze(0).unsqueeze(1)  # a plain GEMM, no batched-matmul dispatch
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
        The reference scheme's reference column is one physical device per row shared by the columns of a
        tile, so its noise is drawn once and shared (correlated across those columns), as in hardware.
        """
        rn, dev = self.config.read_noise, self.config.memristor
        gen = self._read_generator(like.device)
        if self.g_neg.shape[-1] == self.g_pos.shape[-1]:
            std, c = self._read_noise_std(v)
            return like.new_empty(like.shape).normal_(generator=gen) * (std * c)
        if rn.mode == "range" and (self.config.tile is None or self.config.adc.ideal):
            sq = (v * v).sum(-1, keepdim=True).unsqueeze(1)  # (T|1, 1, B, 1)
            std_one = rn.sigma * dev.g_range * sq.sqrt()
            noise = like.new_empty(like.shape).normal_(generator=gen) * std_one
            ref_noise = like.new_empty(like.shape[:-1] + (self.g_neg.shape[-1],)).normal_(generator=gen) * std_one
            return noise - self._expand_ref(ref_noise)
        vv = v * v
        var_pos = self._cached("var_pos", lambda: rn.variance(self.g_pos, dev))
        std = self._partials(vv, var_pos, "var_pos").clamp(min=0).sqrt()
        noise = torch.randn(std.shape, generator=gen, dtype=std.dtype, device=std.device) * std
        var_neg = self._cached("var_neg", lambda: rn.variance(self.g_neg, dev))
        std_n = self._partials(vv, var_neg, "var_neg").clamp(min=0).sqrt()
        noise_n = torch.randn(std_n.shape, generator=gen, dtype=std_n.dtype, device=std_n.device) * std_n
        return noise - self._expand_ref(noise_n)

    def _read_noise_std(self, v: torch.Tensor, tile_dim: bool = True) -> tuple[torch.Tensor, float]:
        """``(s, c)``: the std of the summed read noise of each column output of a pair array is ``c·s``
        (``s`` broadcastable to ``(T, n_row_tiles, B, cols)``; with ``tile_dim=False``, for a read with
        one row tile, to ``(T, B, cols)``, and ``v`` may be ``(B, rows)``). ε+ − ε− of the two
        independent devices is one Gaussian with the summed variance. ``"range"`` noise has the same
        variance on every cell, so its sum needs no matmul: ``s = √Σv²``; otherwise
        ``s² = Σ v²·(Var G+ + Var G−)``, one matmul.
        """
        rn, dev = self.config.read_noise, self.config.memristor
        if rn.mode == "range" and (self.config.tile is None or self.config.adc.ideal):
            s = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
            return (s.unsqueeze(1) if tile_dim else s), rn.sigma * dev.g_range * math.sqrt(2.0)
        var = self._cached("var", lambda: rn.variance(self.g_pos, dev) + rn.variance(self.g_neg, dev))
        vv = v * v
        s = self._partials(vv if vv.dim() == 3 else vv.unsqueeze(0), var, "var").clamp_(min=0).sqrt_()
        return (s if tile_dim else s.squeeze(1)), 1.0

    def _expand_ref(self, t: torch.Tensor) -> torch.Tensor:
        n_ct = t.shape[-1]
        per = math.ceil(self.out_features / n_ct)
        idx = torch.arange(self.out_features, device=t.device) // per
        return t[..., idx]

    def _as_trials(self, v: torch.Tensor, name: str, shared_2d: bool = False) -> torch.Tensor:
        """``v`` as ``(T|1, B, rows)``, checked; with ``shared_2d`` inputs shared by the trials stay
        ``(B, rows)``."""
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(v).__name__} (use torch.as_tensor)")
        if v.is_complex():
            raise TypeError(f"{name}: expected a real tensor, got dtype {v.dtype}")
        rows, trials = self.g_pos.shape[-2], self.g_pos.shape[0]
        d = v.dim()
        if d == 1:
            v = v.unsqueeze(0)
        elif d == 3 and shared_2d and v.shape[0] == 1:
            v = v[0]
        if v.dim() == 2 and not shared_2d:
            v = v.unsqueeze(0)
        if v.dim() not in (2, 3):
            raise ValueError(f"{name}: expected (batch, {rows}) or (trials, batch, {rows}), got {tuple(v.shape)}")
        if v.shape[-1] != rows:
            raise ValueError(f"{name}: last dimension is {v.shape[-1]}, the crossbar has {rows} rows")
        if v.dim() == 3 and v.shape[0] not in (1, trials):
            raise ValueError(f"{name}: {v.shape[0]} trials given, the crossbar holds {trials}")
        return v

    def mvm(self, v_in: torch.Tensor) -> torch.Tensor:
        """Output voltages ``V_out = V_in · (G+ − G−) · R_s`` with read noise and ADC, ``(T, B, cols)``."""
        v = self._as_trials(v_in, "v_in").to(self.g_pos.dtype)
        _check_finite(v, "v_in")
        return self._read(v, 1.0, 1.0)

    def _signal(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free column currents per row tile ``(T, n_row_tiles, B, cols)`` for input voltages ``v``
        and the per-cell voltage factor the read noise scales with: ``v`` for ohmic devices; for a
        device with a nonlinear ``read_iv`` (``I = G·h(V)``) ``h(v)``, exact without wires (``h(v)·G``)
        and solved by Newton's method with ``line_resistance``
        (:func:`memristive.circuit.nonlinear.nonlinear_read`)."""
        iv = getattr(self.config.memristor, "read_iv", None)
        if iv is None or iv.is_linear:
            return self._partials(v, *self._read_g()), v
        hv = iv.shape(v)
        lr = self.config.line_resistance
        if lr is None or lr.ideal:
            return self._partials(hv, *self._read_g()), hv
        from ..circuit.nonlinear import nonlinear_read

        cur = nonlinear_read(self.g_pos.detach(), self.g_neg.detach(), self.config.mapping.layout, self.config.tile,
                             v, iv, lr.r_row, lr.r_col, lr.partial_tiles, per_row_tile=True, max_values=lr.max_values)
        return cur.to(v.dtype), hv

    def _read_nonlinear(self, v: torch.Tensor, out_per_volt: float) -> torch.Tensor:
        """The read of a memristor with a nonlinear ``read_iv`` (input voltages ``v``): currents from
        :meth:`_signal`, read noise with per-cell variance ``h(V)²·Var(G)``, R_s, ADC."""
        cfg = self.config
        partial, v_noise = self._signal(v)
        if cfg.read_noise is not None and cfg.read_noise.sigma > 0:
            partial = partial + self._read_noise(v_noise, partial)
        partial = partial * cfg.r_s
        if not cfg.adc.ideal:
            partial = cfg.adc(partial, self._adc_r if self._adc_r is not None else cfg.adc.range)
        out = partial * out_per_volt
        return out.sum(dim=1) if out.shape[1] > 1 else out.squeeze(1)

    def matmul(self, x: torch.Tensor, scale: torch.Tensor | None = None,
               bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ W`` in weight units, through DAC, crossbar and ADC: ``(T, B, outputs)``.

        ``scale`` (per column) and ``bias`` are the digital periphery after the ADC:
        ``(x @ W)·scale + bias``; without autograd they ride on the read's last pass.
        """
        cfg = self.config
        gp, gn = self.g_pos, self.g_neg
        autograd = torch.is_grad_enabled()
        if not isinstance(x, torch.Tensor):
            x = self._as_trials(x, "x")  # raises the one-line error
        if not (autograd and (x.requires_grad or gp.requires_grad or gn.requires_grad)) \
                and self._eval_read_ok(gp, gn):
            x = self._as_trials(x, "x", shared_2d=True)
            if not (autograd and ((scale is not None and scale.requires_grad)
                                  or (bias is not None and bias.requires_grad))):
                return self._read_eval(x, scale, bias)
            out = self._read_eval(x, None, None)  # a read without autograd; the periphery with it
        else:
            x = self._as_trials(x, "x")
            _check_finite(x, "x")
            x = cfg.dac(x).to(gp.dtype)
            out = self._read(x, cfg.v_read, 1.0 / (cfg.v_read * cfg.r_s * self.k))
        if scale is not None:
            out = out * scale
        if bias is not None:
            out = out + bias
        return out

    def _eval_read_ok(self, gp: torch.Tensor, gn: torch.Tensor) -> bool:
        """The reads :meth:`_read_eval` serves: ohmic cells, ideal wires, one row tile per column (or an
        ideal ADC), a pair mapping, and a static ADC full scale if any ADC."""
        cfg = self.config
        iv = getattr(cfg.memristor, "read_iv", None)
        lr = cfg.line_resistance
        adc = cfg.adc
        return ((iv is None or iv.is_linear) and (lr is None or lr.ideal) and gn.shape[-1] == gp.shape[-1]
                and (adc.ideal or ((self._adc_r is not None or adc.range is not None)
                                   and (cfg.tile is None or cfg.tile.rows >= gp.shape[-2]))))

    def _read_eval(self, x: torch.Tensor, scale: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
        """The read of :meth:`matmul` without autograd (``x``: ``(B, rows)`` shared by the trials or
        ``(T, B, rows)``), as few passes over the data as the physics allows: the GEMM; a finite
        check on a sum the read makes anyway (the noise std, or without noise the GEMM output; the
        inputs are scanned only when that fails); one scaling to ADC codes
        with one noise draw added at its std; round and clamp; one last pass applying the step, the
        per-column scales and the bias. The values of :meth:`_read` to float rounding."""
        cfg = self.config
        if not cfg.dac.ideal:  # a DAC saturates Inf: check before it
            _check_finite(x, "x")
        x = cfg.dac(x)
        if x.dtype != self.g_pos.dtype:
            x = x.to(self.g_pos.dtype)
        g, name = self._read_g()
        T, rows, cols = g.shape
        if x.dim() == 2:  # inputs shared by the trials: one GEMM against them side by side
            flat = g[0] if T == 1 else self._cached("flat_" + name, lambda: g.permute(1, 0, 2).reshape(rows, T * cols))
            partial = torch.mm(x, flat)
            partial = partial.unsqueeze(0) if T == 1 else partial.view(x.shape[0], T, cols).transpose(0, 1)
        else:
            partial = torch.matmul(x, g)
        noisy = cfg.read_noise is not None and cfg.read_noise.sigma > 0
        std, c = self._read_noise_std(x, tile_dim=False) if noisy else (partial, 1.0)  # noise std = c·std
        # Inf/NaN inputs always reach this sum (0·Inf = NaN): the std (√Σx² or √Σx²·Var G) or the GEMM output
        if not math.isfinite(std.sum().item()):
            _check_finite(x, "x")
        adc_r = None if cfg.adc.ideal else (self._adc_r if self._adc_r is not None else cfg.adc.range)
        step = cfg.adc.step(adc_r) if adc_r is not None else 1.0  # volts per ADC code
        unit = cfg.v_read * cfg.r_s / step  # Σ x·G → ADC codes (→ volts without an ADC)
        last = step / (cfg.v_read * cfg.r_s * self.k)  # → weight units
        if noisy:
            eps = _normal_like(partial, self._read_generator(partial.device))
            partial.mul_(unit).addcmul_(eps, std, value=c * unit)
            if adc_r is not None:
                cfg.adc.codes_(partial)
        elif adc_r is not None:
            cfg.adc.codes_(partial.mul_(unit))
        else:
            last = 1.0 / self.k  # Σ x·G → weight units, one pass
        if bias is not None:
            return torch.addcmul(bias, partial, scale, value=last, out=partial) if scale is not None else \
                partial.mul_(last).add_(bias)
        return partial.mul_(scale).mul_(last) if scale is not None else partial.mul_(last)

    def _read(self, x: torch.Tensor, v_per_unit: float, out_per_volt: float) -> torch.Tensor:
        """``out_per_volt · V_out`` for input voltages ``V_in = v_per_unit · x``: the one read (GEMM, read
        noise, ADC) behind :meth:`mvm` and :meth:`matmul`.

        The scalars ride on passes the read makes anyway (``(x·G)·v`` equals ``(x·v)·G``). Without
        autograd every step after the GEMM works in place on its output — one scaling, one noise draw
        added with its std, the ADC's round and clamp in units of its step, one final scaling — instead
        of a fresh tensor per operation.
        """
        cfg = self.config
        iv = getattr(cfg.memristor, "read_iv", None)
        if iv is not None and not iv.is_linear:  # a nonlinear cell I–V (the ohmic path below is untouched)
            return self._read_nonlinear(x * v_per_unit, out_per_volt)
        g, name = self._read_g()
        partial = self._partials(x, g, name)  # Σ x·G, (T, n_row_tiles, B, cols)
        noisy = cfg.read_noise is not None and cfg.read_noise.sigma > 0
        volts = v_per_unit * cfg.r_s  # V_out per unit of Σ x·G
        adc_r = None if cfg.adc.ideal else (self._adc_r if self._adc_r is not None else cfg.adc.range)
        ref = self.g_neg.shape[-1] != self.g_pos.shape[-1]
        grad = torch.is_grad_enabled() and (x.requires_grad or g.requires_grad)
        if grad or ref or (not cfg.adc.ideal and adc_r is None):
            partial = partial * volts
            if noisy:
                partial = partial + self._read_noise(x * v_per_unit, partial) * cfg.r_s
            if not cfg.adc.ideal:
                partial = cfg.adc(partial, adc_r)
            out = partial * out_per_volt
        else:
            step = cfg.adc.step(adc_r) if adc_r is not None else 1.0  # volts per ADC code
            unit = volts / step  # partial → ADC codes (→ volts without an ADC)
            partial.mul_(unit)
            if noisy:
                std, c = self._read_noise_std(x)  # std·c: the noise std in units of Σ x·G
                eps = _normal_like(partial, self._read_generator(partial.device))
                partial.addcmul_(eps, std, value=c * unit)
            if adc_r is not None:
                cfg.adc.codes_(partial)
            out = partial.mul_(step * out_per_volt)
        return out.sum(dim=1) if out.shape[1] > 1 else out.squeeze(1)

    def __rmatmul__(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ xb`` is ``xb.matmul(x)``."""
        return self.matmul(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.matmul(x)

    @torch.no_grad()
    def set_adc_range(self, full_scale: float) -> None:
        """Fix this array's ADC full scale to ``full_scale`` volts (a static converter; it overrides
        ``config.adc.range``, which the converted layers of a model share)."""
        check(isinstance(full_scale, (int, float)) and not isinstance(full_scale, bool) and math.isfinite(full_scale)
              and full_scale > 0, "adc_range", full_scale, "must be a finite full scale > 0 volts")
        self.adc_range.fill_(float(full_scale))
        self._sync()

    @torch.no_grad()
    def calibrate_adc(self, x: torch.Tensor, percentile: float = 100.0) -> float:
        """Fix the ADC full scale (volts) from sample inputs: the given percentile of |partial sums|."""
        cfg = self.config
        v = (cfg.dac(self._as_trials(x, "x")) * cfg.v_read).to(self.g_pos.dtype)
        partial = self._signal(v)[0] * cfg.r_s
        a = partial.abs().flatten()
        rng = float(a.max()) if percentile >= 100 else float(torch.quantile(a[: 2**24].float(), percentile / 100))
        self.adc_range.fill_(max(rng, 1e-30))
        self._sync()
        return self._adc_r

    def extra_repr(self) -> str:
        c = self.counts()
        return (
            f"inputs={self.in_features}, outputs={self.out_features}, trials={self.trials}, "
            f"mapping={self.config.mapping.kind}, cells={c['cells']}, tiles={c['tiles']}"
        )


def _normal_like(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal samples with ``t``'s shape and memory layout, drawn by one vectorized pass over
    the memory (``normal_`` on a transposed view, e.g. the trials-side-by-side GEMM's output, would
    take a serial per-element path ~10× slower)."""
    out = torch.empty_like(t)  # t's strides; dense: its storage is exactly numel() elements
    if out.is_contiguous():
        return out.normal_(generator=generator)
    dims = sorted((st, n) for st, n in zip(out.stride(), out.shape) if n > 1)
    dense, expect = True, 1
    for st, n in dims:
        dense, expect = dense and st == expect, expect * n
    if not dense or out.storage_offset() != 0:
        return torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)
    out.as_strided((out.numel(),), (1,)).normal_(generator=generator)
    return out


def _check_finite(x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() and not math.isfinite(x.detach().sum().item()) and not torch.isfinite(x).all():
        raise ValueError(f"{name}: input contains NaN or infinite values")


def _torch_device(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device!r}: not a torch device (e.g. 'cpu', 'cuda'); the memristor model "
                          "is given as memristor=...") from None


def _first_difference(a: Any, b: Any, path: str = "crossbar") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: saved {a!r}, this one {b!r}"
