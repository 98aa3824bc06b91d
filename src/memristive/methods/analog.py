"""Analog in-situ training, part 1: update schemes, the layer protocol, and writing pulses.

Optimizers (``AnalogSGD``, ``MixedPrecision``, ``TikiTaka``) live in :mod:`.analog_optim`; this
module holds what they share.

**Update schemes** turn a mini-batch's matmul inputs ``x`` (T|1, B, rows) and output gradients
``δ = ∂L/∂y`` (T, B, cols) into pulse counts ``(n_up, n_down)`` per cell (T, rows, cols), for the
ideal update ``ΔW = −lr·Σ_b x_b δ_bᵀ``; ``dw`` is the weight change of one pulse:

* :class:`StochasticPulses` — Gokmen & Vlasov (2016) stochastic pulse trains, as aihwkit's default:
  row i fires a Bernoulli bit stream of length BL with probability p_i, column j one with q_j, and
  the cell is pulsed once per coincidence (sign: −sign(x_i·δ_j)). With update management
  (balanced scaling) p_i = |x_i|/max|x|·√(m/BL), q_j = |δ_j|/max|δ|·√(m/BL), m = lr·max|x|·max|δ|/dw,
  so E[pulses] = BL·p_i·q_j = lr·|x_i δ_j|/dw exactly (while p, q ≤ 1; beyond, probabilities are
  clipped at 1 and the update is truncated, as in hardware). BL management uses
  BL = min(bl, ⌈max m⌉). The coincidences are simulated bit by bit: the counts are a product of the
  0/±1 bit matrices, ``Xᵀ·D`` — no approximation.
* :class:`DeterministicPulses` — n = q(−lr·Σ xδᵀ/dw) with q = round-to-nearest, stochastic rounding
  or truncation, zero below ``threshold`` pulses, at most ``max_pulses``.
* :class:`ManhattanPulses` — the Manhattan rule (Zamanidoost et al. 2015): one pulse of sign
  −sign(∂L/∂W) on every cell whose |∂L/∂W| exceeds ``threshold``.

**Layer protocol.** An *analog layer* is any module with a ``crossbar`` attribute (the
:class:`~memristive.crossbar.Crossbar` whose ``matmul`` it calls), in eval mode (a converted layer in
training mode is hardware-aware training: it reads freshly programmed copies of its digital weights,
not the array; a forward in training mode with an analog optimizer attached is an error). Its
forward input is taken as the matmul input and its output gradient as the matmul output gradient; a layer whose matmul sees
something else (a convolution's unfolded patches) provides ``matmul_inputs(x)`` and
``matmul_grads(grad_out)`` returning ``(…, rows)`` and ``(…, cols)`` tensors.

**Writing.** A weight is a pair (G+, G−) with W = (G+ − G−)/k. ``pair="both"`` (default) gives a
raising weight pulse to G+ as an up pulse and to G− as a down pulse (and the reverse for lowering);
``pair="pos"`` pulses only G+ (G− stays a fixed reference; always so for the reference mapping).
The weight change of one pulse, ``dw``, is measured on the nominal device at its centre state.

**Endurance** (optional, ``endurance=`` of every optimizer; default off): each device's pulses are
charged to it through :class:`memristive.endurance.Wear` (``n_up + n_down`` pulses per written device,
on each device's own bounds); written devices land inside their worn window, failed ones stick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import ConfigError, check
from ..endurance import Endurance, Wear, as_endurance


# ============================================================================ update schemes
@dataclass
class StochasticPulses:
    """Stochastic pulse trains of bit length ``bl`` (see the module docstring)."""

    bl: int = 31
    bl_management: bool = True
    update_management: bool = True
    sampling: Literal["dense", "sparse"] = "dense"
    kind: Literal["stochastic"] = "stochastic"

    def __post_init__(self) -> None:
        check(isinstance(self.bl, int) and 1 <= self.bl <= 1024, "scheme.bl", self.bl, "must be an integer in [1, 1024]")
        check(self.sampling in ("sparse", "dense"), "scheme.sampling", self.sampling, "must be 'sparse' or 'dense'")

    def counts(self, x: torch.Tensor, d: torch.Tensor, lr: float, dw: float,
               generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        T = d.shape[0]
        nonneg = bool(x.amin() >= 0)  # pixels, ReLU outputs: one sign (decided once per call)
        ax, ad = (x if nonneg else x.abs()), d.abs()
        mx = ax.amax(-1, keepdim=True)  # (Tx, B, 1)
        md = ad.amax(-1, keepdim=True)  # (T, B, 1)
        m = lr * mx * md / dw  # (T, B, 1): expected pulses of the largest cell of each sample
        bl = self.bl
        if self.bl_management:
            bl = int(min(self.bl, max(1, math.ceil(float(m.max())))))
        if self.update_management:
            scale = (m / bl).sqrt()
            p = ax / mx.clamp(min=1e-30) * scale
            q = ad / md.clamp(min=1e-30) * scale
        else:
            c = math.sqrt(lr / (bl * dw))
            p, q = ax * c, ad * c
        p = p.clamp(max=1).expand(T, -1, -1)
        q = q.clamp(max=1)
        if self.sampling == "dense":
            return _coincidences_dense(x, d, p, q, bl, generator, nonneg)
        return _coincidences_sparse(x, d, p, q, bl, generator)


def _coincidences_dense(x, d, p, q, bl, generator, nonneg: bool | None = None):
    """Pulse counts from the full bit matrices: one product of (T, bl·B, rows)ᵀ and (T, bl·B, cols)."""
    T, B, rows = p.shape
    cols = q.shape[-1]
    if nonneg is None:
        nonneg = bool(x.amin() >= 0)
    if T == 1 and rows > 16 and d.device.type == "cpu" and nonneg:
        return _coincidences_int8(d, p, q, bl, generator)
    xb = torch.rand((T, bl, B, rows), generator=generator, device=d.device, dtype=d.dtype).lt_(p.unsqueeze(1))
    db = torch.rand((T, bl, B, cols), generator=generator, device=d.device, dtype=d.dtype).lt_(q.unsqueeze(1))
    ds = (db * d.sign().unsqueeze(1)).reshape(T, bl * B, cols)
    db = db.reshape(T, bl * B, cols)
    xb = xb.reshape(T, bl * B, rows)
    if nonneg:  # non-negative inputs (pixels, ReLU outputs): one product gives both
        both, same = (xb.transpose(1, 2) @ torch.cat([db, ds], dim=-1)).split(cols, dim=-1)
    else:
        xs = xb * x.sign().unsqueeze(1).expand(T, bl, B, rows).reshape(T, bl * B, rows)
        both = xb.transpose(1, 2) @ db  # all coincidences
        same = xs.transpose(1, 2) @ ds  # (#sign(xδ) > 0) − (#sign(xδ) < 0)
    # both ± same are even integers (exact in floating point): halving them is exact
    return torch.sub(both, same).mul_(0.5), torch.add(both, same).mul_(0.5)


DENSE_ROW_BITS = 4  # int8 path: up to this bit length every row bit is drawn (no search for p > 0)


def _coincidences_int8(d, p, q, bl, generator):
    """One trial, non-negative inputs, on the CPU: the same product in exact int8 × int8 → int32
    arithmetic (``torch._int_mm``, several times faster than float32 GEMM where the CPU has VNNI)."""
    _, B, rows = p.shape
    cols = q.shape[-1]
    k = bl * B
    k_pad, n_pad = -k % 8, -(2 * cols) % 8
    kk = k + k_pad
    # row bits laid out as the (rows, bl·B) left operand: entry (i, t·B + b)
    if bl <= DENSE_ROW_BITS:  # short streams: draw every row bit (p = 0 never fires) in one pass
        lhs = torch.zeros((rows, kk), dtype=torch.int8)
        xb = torch.rand((bl, B, rows), generator=generator, dtype=p.dtype) < p
        lhs[:, :k].copy_(xb.view(k, rows).t())
    else:  # long streams: drawn only where p > 0 (zero pixels / inactive ReLUs never fire)
        pf = p.reshape(-1)
        nz = (pf > 0).nonzero().squeeze(1)  # flat (b, i) indices
        fired_t, fired_j = (torch.rand((bl, nz.numel()), generator=generator, dtype=p.dtype)
                            < pf.index_select(0, nz)).nonzero(as_tuple=True)
        nz_f = nz.index_select(0, fired_j)
        b_idx, i_idx = torch.div(nz_f, rows, rounding_mode="floor"), nz_f % rows
        lhs = torch.zeros(rows * kk, dtype=torch.int8)
        lhs.index_fill_(0, i_idx * kk + fired_t * B + b_idx, 1)
        lhs = lhs.view(rows, kk)
    # column bits split by the sign of δ: with x >= 0 a coincidence on a δ < 0 column raises the weight
    # (n_up), on a δ > 0 column lowers it (n_down) — both counts straight out of one product
    db = torch.rand((bl, B, cols), generator=generator, dtype=q.dtype) < q
    rhs = torch.cat([(db & (d > 0)).reshape(k, cols), (db & (d < 0)).reshape(k, cols)], dim=1).to(torch.int8)
    if k_pad or n_pad:
        rhs = torch.nn.functional.pad(rhs, (0, n_pad, 0, k_pad))
    prod = torch._int_mm(lhs, rhs)
    # each half converted on its own: one pass, and contiguous counts for the writer
    return prod[:, cols : 2 * cols].to(d.dtype).unsqueeze(0), prod[:, :cols].to(d.dtype).unsqueeze(0)


def _coincidences_sparse(x, d, p, q, bl, generator):
    """The same counts from the firing bits only: streams are drawn for the rows/columns with p > 0,
    and every (row bit, column bit) pair of one sample's time slot is enumerated and counted
    (work ∝ bits fired + coincidences, like a pulse-level simulator, not ∝ bl·B·rows·cols)."""
    T, B, rows = p.shape
    cols = q.shape[-1]
    dev = d.device
    px, qd = p.reshape(-1), q.reshape(-1)
    kx = (px > 0).nonzero().squeeze(1)  # flat (T, B, rows) indices with a chance to fire
    kd = (qd > 0).nonzero().squeeze(1)
    tx, jx = (torch.rand((bl, kx.numel()), generator=generator, device=dev, dtype=p.dtype) < px[kx]).nonzero(as_tuple=True)
    td, jd = (torch.rand((bl, kd.numel()), generator=generator, device=dev, dtype=q.dtype) < qd[kd]).nonzero(as_tuple=True)
    fx, fd = kx[jx], kd[jd]  # flat indices of the fired bits
    gx = torch.div(fx, rows, rounding_mode="floor") * bl + tx  # time slot: (trial, sample, bit)
    gd = torch.div(fd, cols, rounding_mode="floor") * bl + td
    sx = x.sign().expand(T, B, rows).reshape(-1)[fx]
    sd = d.sign().reshape(-1)[fd]
    n_slots = T * B * bl
    cnt_d = torch.bincount(gd, minlength=n_slots)  # column bits per slot
    order = torch.argsort(gd, stable=True)
    col_sorted, sd_sorted = (fd % cols)[order], sd[order]
    start_d = torch.cumsum(cnt_d, 0) - cnt_d
    reps = cnt_d[gx]  # each fired row bit meets every column bit of its slot
    total = int(reps.sum())
    out = torch.zeros(2, T * rows * cols, device=dev, dtype=d.dtype)
    if total:
        xi = torch.repeat_interleave(torch.arange(len(gx), device=dev), reps, output_size=total)
        first = torch.cumsum(reps, 0) - reps
        within = torch.arange(total, device=dev) - first[xi]
        di = start_d[gx][xi] + within
        trial = torch.div(fx, B * rows, rounding_mode="floor")[xi]
        lin = (trial * rows + (fx % rows)[xi]) * cols + col_sorted[di]
        lowers = (sx[xi] * sd_sorted[di] > 0).long()  # sign(xδ) > 0: the weight goes down
        out.view(-1).index_add_(0, lowers * (T * rows * cols) + lin, torch.ones(total, device=dev, dtype=d.dtype))
    return out[0].view(T, rows, cols), out[1].view(T, rows, cols)


ROUNDINGS = ("nearest", "stochastic", "truncate")


@dataclass
class DeterministicPulses:
    """Pulse counts from the ideal update: n = q(ΔW/dw), zero where |ΔW/dw| < ``threshold``."""

    rounding: Literal["nearest", "stochastic", "truncate"] = "nearest"
    threshold: float = 0.0
    max_pulses: int | None = None
    kind: Literal["deterministic"] = "deterministic"

    def __post_init__(self) -> None:
        check(self.rounding in ROUNDINGS, "scheme.rounding", self.rounding, f"must be one of {list(ROUNDINGS)}")
        check(math.isfinite(self.threshold) and self.threshold >= 0, "scheme.threshold", self.threshold,
              "must be >= 0 (units of one pulse)")
        check(self.max_pulses is None or (isinstance(self.max_pulses, int) and self.max_pulses >= 1),
              "scheme.max_pulses", self.max_pulses, "must be an integer >= 1 or null")

    def quantize(self, u: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Signed pulse counts for a desired update ``u`` in units of one pulse."""
        if self.rounding == "nearest":
            n = u.round()
        elif self.rounding == "truncate":
            n = u.trunc()
        else:
            n = (u + torch.rand(u.shape, generator=generator, device=u.device, dtype=u.dtype)).floor()
        if self.threshold > 0:
            n = n * (u.abs() >= self.threshold)
        if self.max_pulses is not None:
            n = n.clamp(-self.max_pulses, self.max_pulses)
        return n

    def counts(self, x, d, lr, dw, generator):
        n = self.quantize(grad_matrix(x, d).mul_(-lr / dw), generator)
        return n.clamp(min=0), (-n).clamp(min=0)


@dataclass
class ManhattanPulses:
    """Manhattan rule: one pulse of sign −sign(∂L/∂W) where |∂L/∂W| > ``threshold``."""

    threshold: float = 0.0
    kind: Literal["manhattan"] = "manhattan"

    def __post_init__(self) -> None:
        check(math.isfinite(self.threshold) and self.threshold >= 0, "scheme.threshold", self.threshold,
              "must be >= 0 (gradient units)")

    def counts(self, x, d, lr, dw, generator):
        grad = grad_matrix(x, d)
        fire = (grad.abs() > self.threshold).to(grad.dtype)
        n = -grad.sign() * fire
        return n.clamp(min=0), (-n).clamp(min=0)


SCHEMES = {"stochastic": StochasticPulses, "deterministic": DeterministicPulses, "manhattan": ManhattanPulses}
UpdateScheme = StochasticPulses | DeterministicPulses | ManhattanPulses


def update_scheme(spec: str | dict | UpdateScheme) -> UpdateScheme:
    """A scheme from its kind (``"stochastic"``), a mapping with ``kind``, or an instance."""
    if isinstance(spec, (StochasticPulses, DeterministicPulses, ManhattanPulses)):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    if isinstance(spec, dict):
        kind = spec.get("kind")
        check(kind in SCHEMES, "scheme.kind", kind, f"must be one of {sorted(SCHEMES)}")
        try:
            return SCHEMES[kind](**spec)
        except TypeError as exc:
            raise ConfigError(f"scheme: {exc}") from None
    raise ConfigError(f"scheme={spec!r}: expected a kind, a mapping with 'kind', or a scheme object")


def grad_matrix(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``∂L/∂W = Σ_b x_bᵀ δ_b`` per trial: ``(T, rows, cols)``."""
    return x.transpose(-1, -2) @ d


# ============================================================================ the layer protocol
def analog_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every analog layer of ``model`` (modules with a ``crossbar``)."""
    out, seen = [], set()
    for name, mod in model.named_modules():  # outermost first: a layer wrapping another keeps its crossbar
        xb = getattr(mod, "crossbar", None)
        if isinstance(xb, nn.Module) and hasattr(xb, "g_pos") and hasattr(xb, "g_neg") and id(xb) not in seen:
            seen.add(id(xb))
            out.append((name, mod))
    return out


class Tap:
    """Records each analog layer's matmul input and output gradient during forward/backward.

    Forward hooks store the input; a tensor hook on the output stores its gradient when
    ``backward`` reaches it. A layer whose output does not require grad (the first layer: inputs
    and conductances are constants) gets a zero probe added so that autograd reaches it. Nothing is
    recorded under ``torch.no_grad()``.
    """

    def __init__(self, layers: list[tuple[str, nn.Module]]) -> None:
        self.xs: dict[int, list[torch.Tensor]] = {id(m): [] for _, m in layers}
        self.ds: dict[int, list[torch.Tensor]] = {id(m): [] for _, m in layers}
        self.probes: dict[int, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook) for _, m in layers]

    def _hook(self, module, inputs, output):
        if not torch.is_grad_enabled():
            return None
        if module.training:
            raise RuntimeError(
                f"analog layer {type(module).__name__} is in training mode, where a converted layer re-programs its "
                "digital 'weight' onto fresh devices every forward (hardware-aware training) and never reads the array "
                "the analog optimizer writes; call model.eval() for in-situ training")
        key = id(module)
        x = inputs[0]
        if hasattr(module, "matmul_inputs"):
            x = module.matmul_inputs(x)
        self.xs[key].append(x.detach())
        out = output
        if not out.requires_grad:
            probe = self.probes.get(key)
            if probe is None or probe.device != out.device or probe.dtype != out.dtype:
                probe = torch.zeros((), device=out.device, dtype=out.dtype, requires_grad=True)
                self.probes[key] = probe
            out = out + probe
        grads = self.ds[key]
        fold = getattr(module, "matmul_grads", None)
        out.register_hook(lambda g: grads.append((fold(g) if fold is not None else g).detach()))
        return out

    def pop(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(x, δ)`` of everything recorded for ``module`` since the last pop, as ``(T|1, B, rows)`` and
        ``(T, B, cols)``; ``None`` if nothing was recorded (no backward pass reached it)."""
        key = id(module)
        xs, ds = self.xs[key], self.ds[key]
        if not ds:
            xs.clear()
            return None
        if len(xs) != len(ds):
            raise RuntimeError(f"analog layer recorded {len(xs)} forward passes but {len(ds)} gradients; "
                               "call backward once per recorded forward before step()")
        ds = list(reversed(ds))  # backward visits the calls in reverse order
        self.ds[key].clear()
        x3 = [_as3(x) for x in xs]
        d3 = [_as3(d) for d in ds]
        T = max(max(t.shape[0] for t in d3), max(t.shape[0] for t in x3))
        if len(x3) == 1:
            x, d = x3[0], d3[0]
        else:
            xT = 1 if all(t.shape[0] == 1 for t in x3) else T
            x = torch.cat([t.expand(xT, -1, -1) for t in x3], dim=1)
            d = torch.cat([t.expand(T, -1, -1) for t in d3], dim=1)
        xs.clear()
        return x, d.expand(T, -1, -1) if d.shape[0] != T else d

    def clear(self) -> None:
        for v in self.xs.values():
            v.clear()
        for v in self.ds.values():
            v.clear()
        for p in self.probes.values():
            p.grad = None

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def _as3(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 1:
        return t.reshape(1, 1, -1)
    if t.dim() == 2:
        return t.unsqueeze(0)
    if t.dim() == 3:
        return t
    return t.reshape(t.shape[0], -1, t.shape[-1])  # (T, ..., features): extra dims are more samples


# ============================================================================ writing pulses
def memristor_of(crossbar: nn.Module):
    """The device model a crossbar is built from (``crossbar.memristor`` on the new core)."""
    dev = getattr(crossbar, "memristor", None)
    if dev is None:
        dev = crossbar.config.device
    return dev


def pulse_step(dev) -> tuple[float, float]:
    """``(ΔG_up, ΔG_down)`` (siemens, magnitudes) of one pulse of the nominal device at its centre
    state (``dev.g_mid`` for devices without a centre: where balanced pairs sit), measured through ``dev.pulse``."""
    if not getattr(dev, "has_pulse_response", False):
        raise ConfigError(f"device {getattr(dev, 'kind', type(dev).__name__)!r} has no pulse response; "
                          "in-situ analog training needs a device with pulse() (e.g. a pulsed device preset)")
    steps = getattr(dev, "steps", None)
    if steps is not None:  # pulsed models: the noiseless step of the nominal device at its centre
        s_up, s_dn = steps(torch.tensor(dev.centre, dtype=torch.float64))
        up, dn = float(s_up) * dev.g_range, float(s_dn) * dev.g_range
    else:
        g = torch.tensor([dev.g_mid], dtype=torch.float64)
        up = float(dev.pulse(g, torch.ones(1, dtype=torch.float64))[0] - g[0])
        dn = float(g[0] - dev.pulse(g, -torch.ones(1, dtype=torch.float64))[0])
    if not (up > 0 and dn > 0):
        raise ConfigError(f"device {getattr(dev, 'kind', '')!r}: one pulse at the centre state moves G by "
                          f"{up:.3g} S up and {dn:.3g} S down; both must be > 0 to train")
    return up, dn


SPARSE_WRITE = 0.3  # below this fraction of pulsed cells, only those cells go through the device model


def device_bounds(dev, params, like: torch.Tensor) -> tuple:
    """Each device's own ``(G_lo, G_hi)`` (tensors shaped like ``like``) where the device model has
    per-device bounds (``clip``), else the nominal ``(g_min, g_max)`` floats."""
    clip = getattr(dev, "clip", None)
    if clip is None:
        return dev.g_min, dev.g_max
    return clip(torch.full_like(like, -math.inf), params), clip(torch.full_like(like, math.inf), params)


class PairWriter:
    """Applies pulse counts to a pair of conductance tensors ``(G+, G−)`` in place.

    Holds the device, its per-device parameters (drawn once, device-to-device variation), the
    stuck masks, and running totals of pulses and programming energy.
    """

    def __init__(self, dev, g_pos: torch.Tensor, g_neg: torch.Tensor, k: float, pair: str,
                 generator: torch.Generator, stuck_pos: torch.Tensor | None = None,
                 stuck_neg: torch.Tensor | None = None, endurance: Endurance | dict | None = None,
                 wear_generator: torch.Generator | None = None) -> None:
        check(pair in ("both", "pos"), "pair", pair, "must be 'both' or 'pos'")
        self.dev = dev
        self.g_pos, self.g_neg = g_pos, g_neg
        self.k = float(k)
        self.reference = g_neg.shape[-1] != g_pos.shape[-1]  # one reference column: never pulsed
        self.pair = "pos" if self.reference else pair
        up, dn = pulse_step(dev)
        self.dw = (up + dn) / self.k if self.pair == "both" else (up + dn) / (2 * self.k)  # weight per pulse
        sample = getattr(dev, "sample_params", None)
        kw = dict(generator=generator, device=g_pos.device, dtype=g_pos.dtype)
        self.params_pos = sample(tuple(g_pos.shape), **kw) if sample else None
        self.params_neg = sample(tuple(g_neg.shape), **kw) if sample and self.pair == "both" else None
        self.stuck_pos = stuck_pos if stuck_pos is not None and bool(stuck_pos.any()) else None
        self.stuck_neg = stuck_neg if stuck_neg is not None and bool(stuck_neg.any()) else None
        clip = getattr(dev, "clip", None)
        if clip is not None:  # a device cannot hold more than its own bounds
            g_pos.copy_(self._keep(clip(g_pos, self.params_pos), g_pos, self.stuck_pos))
            if self.pair == "both":
                g_neg.copy_(self._keep(clip(g_neg, self.params_neg), g_neg, self.stuck_neg))
        self.pulses = 0.0
        self.energy = 0.0
        self.has_energy = hasattr(dev, "pulse_energy")
        self.wear_pos = self.wear_neg = None
        endurance = as_endurance(endurance)
        if endurance is not None:  # failure counts drawn on wear_generator's device, then moved
            kw = dict(dtype=g_pos.dtype, device=g_pos.device)
            self.wear_pos = Wear(endurance, *device_bounds(dev, self.params_pos, g_pos), g_pos.shape, wear_generator, **kw)
            if self.pair == "both":
                self.wear_neg = Wear(endurance, *device_bounds(dev, self.params_neg, g_neg), g_neg.shape,
                                     wear_generator, **kw)

    @staticmethod
    def _keep(new, old, stuck):
        return new if stuck is None else torch.where(stuck, old, new)

    def _side(self, g, up, dn, nt, params, stuck, generator, rows, active, wear=None):
        """One side of the pairs: ``up``/``dn``/``nt`` are already the written cells' counts (``rows``: those
        rows; ``active``: those flat cells; neither: every cell)."""
        index = None  # the written devices' positions, for the wear
        if rows is not None:  # a few rows (Tiki-Taka transfers)
            pick = lambda t: t.index_select(-2, rows)  # noqa: E731
            if wear is not None:
                T, _, cols = g.shape
                index = (torch.arange(T, device=g.device).view(-1, 1, 1), rows.view(1, -1, 1),
                         torch.arange(cols, device=g.device).view(1, 1, -1))
        elif active is not None:  # only the cells that receive pulses (the rest keep G exactly)
            pick = lambda t: t.reshape(-1).index_select(0, active)  # noqa: E731
            index = active
        else:
            pick = None  # dense: every cell through the device model
        if pick is None:
            g_sub, p_sub, st = g, params, stuck
        else:
            g_sub = pick(g)
            st = None if stuck is None else pick(stuck)
            # per-device tensors follow the cells; derived caches (non-string keys) are rebuilt
            p_sub = None if params is None else {k: (pick(v) if isinstance(v, torch.Tensor) and v.dim() else v)
                                                  for k, v in params.items() if isinstance(k, str)}
        if hasattr(self.dev, "pulse_pair"):
            kw = {"params": p_sub} if p_sub is not None else {}
            new = self._keep(self.dev.pulse_pair(g_sub, up, dn, generator, **kw), g_sub, st)
            mid = None
        else:  # two trains through the Device interface: the raising one, then the lowering one
            mid = self._keep(self.dev.pulse(g_sub, up, generator), g_sub, st)
            new = self._keep(self.dev.pulse(mid, -dn, generator), g_sub, st)
        if wear is not None:  # stuck (defect) devices never move: no pulse is charged to them
            new = wear.write(g_sub, new, nt if st is None else nt * ~st, index=index)
        if self.has_energy:
            if mid is None:
                total = getattr(self.dev, "pulse_energy_total", None)
                self.energy += total(g_sub, new, nt) if total is not None else float(self.dev.pulse_energy(g_sub, new, nt).sum())
            else:  # each train at its own polarity's pulse (signed counts)
                self.energy += float(self.dev.pulse_energy(g_sub, mid, up).sum() + self.dev.pulse_energy(mid, new, -dn).sum())
        if pick is None:
            g.copy_(new)
        elif rows is not None:
            g.index_copy_(-2, rows, new)
        else:
            g.view(-1).index_copy_(0, active, new)

    @torch.no_grad()
    def write(self, n_up: torch.Tensor, n_down: torch.Tensor, generator: torch.Generator | None,
              rows: torch.Tensor | None = None) -> None:
        """``n_up`` weight-raising and ``n_down`` weight-lowering pulses per cell (counts >= 0),
        ``(T, rows, cols)`` or, with ``rows`` (indices), ``(T, len(rows), cols)``."""
        n_tot = n_up + n_down
        total = float(n_tot.sum())
        active = None
        if rows is None:  # which cells go through the device model: decided once for both sides
            mask = n_tot.reshape(-1) != 0
            if int(mask.sum()) <= SPARSE_WRITE * mask.numel():
                active = mask.nonzero().squeeze(1)
                n_up, n_down, n_tot = (t.reshape(-1).index_select(0, active) for t in (n_up, n_down, n_tot))
        self._side(self.g_pos, n_up, n_down, n_tot, self.params_pos, self.stuck_pos, generator, rows, active, self.wear_pos)
        if self.pair == "both":
            self._side(self.g_neg, n_down, n_up, n_tot, self.params_neg, self.stuck_neg, generator, rows, active,
                       self.wear_neg)
            total *= 2
        self.pulses += total

    @torch.no_grad()
    def write_devices(self, n_pos: torch.Tensor, n_neg: torch.Tensor | None, generator: torch.Generator | None) -> None:
        """Each device its own signed train: ``n_pos`` pulses on G+ and ``n_neg`` on G− (``n > 0`` raises
        that device's G, ``n < 0`` lowers it; ``(T, rows, cols)``). For update rules that choose which
        device of a pair to pulse (DTGA's ``headroom``); ``n_neg`` must be ``None`` when only G+ is
        written (``pair="pos"`` or a reference column). Stuck masks, wear, energy and totals as :meth:`write`."""
        sides = [(self.g_pos, n_pos, self.params_pos, self.stuck_pos, self.wear_pos)]
        if n_neg is not None:
            if self.pair != "both":
                raise ValueError("PairWriter.write_devices: n_neg given but only G+ is written (pair='pos' or a "
                                 "reference column)")
            sides.append((self.g_neg, n_neg, self.params_neg, self.stuck_neg, self.wear_neg))
        for g, n, params, stuck, wear in sides:
            up, dn, nt = n.clamp(min=0), (-n).clamp(min=0), n.abs()
            self.pulses += float(nt.sum())
            mask = nt.reshape(-1) != 0
            active = None
            if int(mask.sum()) <= SPARSE_WRITE * mask.numel():
                active = mask.nonzero().squeeze(1)
                up, dn, nt = (t.reshape(-1).index_select(0, active) for t in (up, dn, nt))
            self._side(g, up, dn, nt, params, stuck, generator, None, active, wear)

    def state_dict(self) -> dict:
        out = {"params_pos": self.params_pos, "params_neg": self.params_neg, "pulses": self.pulses, "energy": self.energy}
        for side in ("pos", "neg"):
            wear = getattr(self, f"wear_{side}")
            if wear is not None:
                out[f"wear_{side}"] = wear.state_dict()
        return out

    def load_state_dict(self, state: dict) -> None:
        self.params_pos, self.params_neg = state["params_pos"], state["params_neg"]
        self.pulses, self.energy = float(state["pulses"]), float(state["energy"])
        for side in ("pos", "neg"):
            wear, saved = getattr(self, f"wear_{side}"), state.get(f"wear_{side}")
            if (wear is None) != (saved is None):
                raise ValueError(f"PairWriter state: endurance wear of G{'+' if side == 'pos' else '−'} is "
                                 f"{'missing' if saved is None else 'present'} in the state but "
                                 f"{'on' if wear is not None else 'off'} in this writer")
            if wear is not None:
                wear.load_state_dict(saved)
