"""The GRU on memristor crossbars, its quantization-aware software twin and a sequence model.

GRU cell (PyTorch ``nn.GRU`` convention, gates ordered r, z, n)::

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

Crossbar layout (``layout="fused"``, the default; after Li et al. 2019's one-array LSTM): one array
per layer with ``[x; h; 1]`` on the rows and the gates stacked on the columns. Because ``r``
multiplies only the recurrent part of the candidate gate, the n gate takes two column blocks::

              r            z            n_x        n_h
    x   [  W_irᵀ        W_izᵀ        W_inᵀ        0     ]
    h   [  W_hrᵀ        W_hzᵀ          0        W_hnᵀ   ]
    1   [ b_ir+b_hr    b_iz+b_hz      b_in       b_hn   ]      → (in + h + 1) × 4h weights

``layout="split"`` uses two arrays per layer, ``[x; 1] → [r z n]`` and ``[h; 1] → [r z n]``: exactly
PyTorch's parameters, so 2 cells per parameter (no structural zeros).

Each weight is a differential 1T1R pair with the scale-and-offset mapping ``G± = G_min + k·W±``
(:mod:`memristive.crossbar.mapping`). Quantized weights (:mod:`memristive.quant`) are stored as
integer codes ``q ∈ {−Q…Q}`` (each device holds ``|q|`` of ``Q+1`` levels) and the per-column scale
``s`` is one digital multiply after the ADC: ``y = (x·q)·s``. Gate activations (σ, tanh) and the
state update run in the periphery, each followed by an asymmetric activation quantizer; the network
input is quantized by the input (DAC) quantizer.

Classes:

* :class:`QuantGRU` -- ``nn.GRU`` (same parameters and state dict, ``batch_first=True``) that, given a
  :class:`~memristive.quant.QuantConfig` and/or :class:`~memristive.quant.WeightNoise`, runs the
  crossbar math in software: fake-quantized crossbar matrices, weight noise in training, activation
  quantizers. Without them it *is* ``nn.GRU`` (fast fused kernel).
* :class:`CrossbarMatrix` (defined in :mod:`.base`, shared by every crossbar layer) -- one matrix on a
  :class:`~memristive.crossbar.Crossbar` plus column scales.
* :class:`CrossbarGRU` -- the converted multi-layer GRU, batched over sequences and Monte Carlo
  trials: input ``(B, L, in)`` (shared by all trials) or ``(T, B, L, in)``, output
  ``(T, B, L, h)`` and final states ``(T, layers, B, h)``. Ideal and unquantized it equals ``nn.GRU``.
* :class:`GRUNet` / :class:`CrossbarGRUNet` -- GRU + linear head (``readout="last"`` for sequence
  classification, ``"all"`` for per-step regression), and :func:`convert_gru` to go from one to the other.

When the arrays are linear (ideal DAC/ADC, no read noise) the effective weights are read once per
forward and the input projection of all time steps is one batched matmul; otherwise every time step
goes through :meth:`Crossbar.matmul` (DAC, read noise, ADC per step).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from ..config import check
from ..crossbar import CrossbarConfig
from ..quant import ActQuant, QuantConfig, QuantLinear, WeightNoise, quantize_weight
from .base import CrossbarMatrix, layer_seed, register_converter

__all__ = [
    "LAYOUTS",
    "GateQuant",
    "QuantGRU",
    "CrossbarMatrix",
    "CrossbarGRU",
    "GRUNet",
    "CrossbarGRUNet",
    "convert_gru",
    "gru_matrices",
    "gru_param_count",
]

LAYOUTS = ("fused", "split")
_HOIST_LIMIT = 1 << 24  # elements of the hoisted input projection (T·B·L·4h) before stepping instead


def gru_param_count(input_size: int, hidden_size: int, num_layers: int = 1, output_size: int = 0,
                    bias: bool = True) -> int:
    """PyTorch parameter count ``Σ 3·(n_in·h + h² + 2h)`` (+ a linear head ``h·out + out``)."""
    total, n_in = 0, input_size
    for _ in range(num_layers):
        total += 3 * (n_in * hidden_size + hidden_size**2 + (2 * hidden_size if bias else 0))
        n_in = hidden_size
    if output_size:
        total += hidden_size * output_size + (output_size if bias else 0)
    return total


# ----------------------------------------------------------------------------------------- layout
def gru_matrices(gru: nn.GRU, layer: int, layout: str = "fused") -> dict[str, torch.Tensor]:
    """The crossbar matrices of one GRU layer (differentiable in the GRU's parameters).

    ``fused``: ``{"xh1": (in + h [+1], 4h)}``; ``split``: ``{"x1": (in [+1], 3h), "h1": (h [+1], 3h)}``.
    """
    h = gru.hidden_size
    w_ih = getattr(gru, f"weight_ih_l{layer}")
    w_hh = getattr(gru, f"weight_hh_l{layer}")
    b_ih = getattr(gru, f"bias_ih_l{layer}") if gru.bias else None
    b_hh = getattr(gru, f"bias_hh_l{layer}") if gru.bias else None
    n_in = w_ih.shape[1]
    if layout == "split":
        a, b = w_ih.t(), w_hh.t()
        if gru.bias:
            a = torch.cat([a, b_ih.unsqueeze(0)], 0)
            b = torch.cat([b, b_hh.unsqueeze(0)], 0)
        return {"x1": a, "h1": b}
    if layout != "fused":
        raise ValueError(f"layout={layout!r}: must be one of {list(LAYOUTS)}")
    zx = w_ih.new_zeros(n_in, h)
    zh = w_hh.new_zeros(h, h)
    rows = [torch.cat([w_ih[: 2 * h].t(), w_ih[2 * h :].t(), zx], 1),
            torch.cat([w_hh[: 2 * h].t(), zh, w_hh[2 * h :].t()], 1)]
    if gru.bias:
        rows.append(torch.cat([b_ih[: 2 * h] + b_hh[: 2 * h], b_ih[2 * h :], b_hh[2 * h :]]).unsqueeze(0))
    return {"xh1": torch.cat(rows, 0)}


def structural_params(layout: str, key: str, n_in: int, h: int, bias: bool) -> int:
    """Entries of a layout matrix that hold a parameter (the fused zero blocks do not)."""
    if layout == "fused":
        return 3 * h * (n_in + h) + (4 * h if bias else 0)
    rows = (n_in if key == "x1" else h) + (1 if bias else 0)
    return rows * 3 * h


def _assemble(layout: str, mats: dict[str, torch.Tensor], n_in: int, h: int, bias: bool):
    """Effective matrices ``(T, rows, cols)`` → ``(W_x (T, in, 4h), b (T, 4h) | None, W_h (T, h, 4h))``
    so that the pre-activations are ``[r, z, n_x, n_h] = x·W_x + b + h·W_h``."""
    if layout == "fused":
        m = mats["xh1"]
        return m[:, :n_in], (m[:, n_in + h] if bias else None), m[:, n_in : n_in + h]
    a, b = mats["x1"], mats["h1"]
    za = a.new_zeros(a.shape[0], n_in, h)
    zb = b.new_zeros(b.shape[0], h, h)
    w_x = torch.cat([a[:, :n_in, : 2 * h], a[:, :n_in, 2 * h :], za], -1)
    w_h = torch.cat([b[:, :h, : 2 * h], zb, b[:, :h, 2 * h :]], -1)
    bias_v = None
    if bias:
        ba, bb = a[:, n_in], b[:, h]
        bias_v = torch.cat([ba[:, : 2 * h] + bb[:, : 2 * h], ba[:, 2 * h :], bb[:, 2 * h :]], -1)
    return w_x, bias_v, w_h


class GateQuant(nn.Module):
    """The activation quantizers of one GRU layer: r, z (sigmoid), n (tanh) and the new state h."""

    def __init__(self) -> None:
        super().__init__()
        self.r = ActQuant(natural_range=(0.0, 1.0))
        self.z = ActQuant(natural_range=(0.0, 1.0))
        self.n = ActQuant(natural_range=(-1.0, 1.0))
        self.h = ActQuant(natural_range=(-1.0, 1.0))

    def configure(self, bits: int | None, observer: str = "ema", momentum: float = 0.01) -> None:
        for q in (self.r, self.z, self.n, self.h):
            q.configure(bits, observer, momentum)


def _recurrence(preact, steps: int, h: torch.Tensor, acts: GateQuant) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the GRU update over ``steps``; ``preact(t, h) → (T, B, 4h)`` gives ``[r, z, n_x, n_h]``."""
    n_h = h.shape[-1]
    q_r, q_z, q_n, q_h = acts.r.frozen(), acts.z.frozen(), acts.n.frozen(), acts.h.frozen()
    outs = []
    for t in range(steps):
        # split/unbind (not slicing) keep the backward pass linear in the number of steps
        a_rz, a_nx, a_nh = preact(t, h).split([2 * n_h, n_h, n_h], -1)
        r_pre, z_pre = torch.sigmoid(a_rz).split(n_h, -1)
        r, z = q_r(r_pre), q_z(z_pre)
        n = q_n(torch.tanh(torch.addcmul(a_nx, r, a_nh)))
        h = q_h(torch.addcmul(n, z, h - n))
        outs.append(h)
    return torch.stack(outs, 2), h


def _run_linear_layer(x, w_x, b, w_h, h0, acts):
    """Layer forward from effective matrices (trials first). ``x`` (T|1, B, L, in) → (T, B, L, h)."""
    trials, (batch, steps) = w_x.shape[0], x.shape[1:3]
    hidden = w_h.shape[1]
    h = h0 if h0 is not None else x.new_zeros(trials, batch, hidden)
    h = h.expand(trials, batch, hidden)
    if trials * batch * steps * 4 * hidden <= _HOIST_LIMIT:
        # input projection of all steps at once, time-major so every step's slice is contiguous
        xt = x.transpose(1, 2).expand(trials, steps, batch, x.shape[-1]).reshape(trials, steps * batch, -1)
        if b is not None:
            xp = torch.baddbmm(b.unsqueeze(1), xt, w_x)
        else:
            xp = torch.bmm(xt, w_x)
        xs = xp.view(trials, steps, batch, -1).unbind(1)

        def preact(t, h):
            return torch.baddbmm(xs[t], h, w_h)
    else:
        xs = x.unbind(2)

        def preact(t, h):
            p = torch.matmul(xs[t], w_x)
            if b is not None:
                p = p + b[:, None, :]
            return torch.baddbmm(p, h, w_h)

    return _recurrence(preact, steps, h, acts)


# ------------------------------------------------------------------------------------- software
class QuantGRU(nn.GRU):
    """``nn.GRU`` (``batch_first=True``) with optional quantization-aware / noise-aware forward.

    ``forward(x (B, L, in), h0=None) → (out (B, L, h), h_n (layers, B, h))``. With ``quant`` (a
    :class:`QuantConfig` with bits) or active ``noise`` it evaluates the crossbar layout in software:
    the layout matrices are fake-quantized (STE), noised (training mode only, fresh every forward),
    and the gate activations pass through the asymmetric quantizers (observing in training mode).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, *,
                 quant: QuantConfig | None = None, noise: WeightNoise | None = None,
                 layout: Literal["fused", "split"] = "fused") -> None:
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=True)
        check(layout in LAYOUTS, "layout", layout, f"must be one of {list(LAYOUTS)}")
        self.layout = layout
        self.input_quant = ActQuant()
        self.acts = nn.ModuleList([GateQuant() for _ in range(num_layers)])
        self.quant: QuantConfig | None = None
        self.noise: WeightNoise | None = None
        self.set_quant(quant, noise)

    @classmethod
    def from_gru(cls, gru: nn.GRU, quant: QuantConfig | None = None, noise: WeightNoise | None = None,
                 layout: str = "fused") -> "QuantGRU":
        """A QuantGRU holding a copy of ``gru``'s parameters (``batch_first`` becomes True)."""
        q = cls(gru.input_size, gru.hidden_size, gru.num_layers, gru.bias, quant=quant, noise=noise, layout=layout)
        p = next(gru.parameters())
        q = q.to(device=p.device, dtype=p.dtype)
        q.load_state_dict(gru.state_dict(), strict=False)
        return q

    def set_quant(self, quant: QuantConfig | None, noise: WeightNoise | None = None) -> "QuantGRU":
        """Switch quantization (``None``: full precision) and training noise (``None``: none)."""
        self.quant, self.noise = quant, noise
        bits = quant.activation_bits if quant is not None else None
        obs = quant.observer if quant is not None else "ema"
        mom = quant.momentum if quant is not None else 0.01
        self.input_quant.configure(bits if (quant is not None and quant.quantize_input) else None, obs, mom)
        for a in self.acts:
            a.configure(bits, obs, mom)
        return self

    @property
    def plain(self) -> bool:
        """True when the forward is exactly ``nn.GRU``'s."""
        q = self.quant is None or (self.quant.weight_bits is None and self.quant.activation_bits is None)
        n = self.noise is None or self.noise.sigma == 0 or not self.training
        return q and n

    def matrices(self, layer: int) -> dict[str, torch.Tensor]:
        return gru_matrices(self, layer, self.layout)

    def effective_matrices(self, layer: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Fake-quantized (and, in training, noised) layout matrices, each ``(rows, cols)``."""
        bits = self.quant.weight_bits if self.quant is not None else None
        gran = self.quant.granularity if self.quant is not None else "channel"
        out = {}
        for key, m in self.matrices(layer).items():
            groups = 4 if key == "xh1" else 3
            mq, w_max = quantize_weight(m, bits, gran, groups)
            if self.noise is not None and self.noise.sigma > 0 and self.training:
                mq = self.noise(mq, w_max, generator)
            out[key] = mq
        return out

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        if self.plain:
            return super().forward(x, h0)
        if x.dim() != 3:
            raise ValueError(f"QuantGRU: expected input (batch, steps, {self.input_size}), got {tuple(x.shape)}")
        seq = self.input_quant(x).unsqueeze(0)
        finals = []
        for layer in range(self.num_layers):
            mats = {k: v.unsqueeze(0) for k, v in self.effective_matrices(layer).items()}
            n_in = self.input_size if layer == 0 else self.hidden_size
            w_x, b, w_h = _assemble(self.layout, mats, n_in, self.hidden_size, self.bias)
            h_init = None if h0 is None else h0[layer].unsqueeze(0)
            seq, h_last = _run_linear_layer(seq, w_x, b, w_h, h_init, self.acts[layer])
            finals.append(h_last)
        return seq.squeeze(0), torch.cat(finals, 0)


# ------------------------------------------------------------------------------------- crossbar
def _ones_col(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], -1)


class CrossbarGRU(nn.Module):
    """A multi-layer GRU whose matrices live on crossbars (``T`` Monte Carlo instances at once).

    Build with :meth:`from_gru`. ``forward(x, h0=None)`` takes ``(B, L, in)`` or ``(T, B, L, in)``
    (``(L, B, in)`` / ``(T, L, B, in)`` when the source GRU had ``batch_first=False``) and returns
    ``(out (T, B, L, h), h_n (T, layers, B, h))`` (``out (T, L, B, h)`` without ``batch_first``).
    The GRU's parameters (PyTorch names, ``weight_ih_l0`` …) stay trainable: in training mode the
    forward programs them onto fresh devices (hardware-aware training, :mod:`memristive.nn.base`).
    """

    def __init__(self, layers: list[nn.ModuleDict], input_size: int, hidden_size: int, bias: bool, layout: str,
                 acts: nn.ModuleList, input_quant: ActQuant, params: dict[str, torch.Tensor] | None = None,
                 batch_first: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.input_size, self.hidden_size, self.bias, self.layout = input_size, hidden_size, bias, layout
        self.batch_first = batch_first
        self.acts = acts
        self.input_quant = input_quant
        for name, p in (params or {}).items():
            self.register_parameter(name, nn.Parameter(p.detach().clone()))

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def trials(self) -> int:
        return next(iter(self.layers[0].values())).crossbar.trials

    @classmethod
    def from_gru(cls, gru: nn.GRU, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0,
                 quant: QuantConfig | None = None, layout: str | None = None) -> "CrossbarGRU":
        """Program ``gru`` (``nn.GRU`` or :class:`QuantGRU`) onto crossbars; array ``j`` gets
        ``layer_seed(seed, j)``.

        ``quant`` defaults to the :class:`QuantGRU`'s own config (its trained activation ranges are
        copied); for a plain ``nn.GRU`` with activation bits, calibrate with
        :func:`memristive.quant.calibration` before evaluating.
        """
        config = config or CrossbarConfig()
        if quant is None:
            quant = getattr(gru, "quant", None)
        layout = layout or getattr(gru, "layout", "fused")
        check(layout in LAYOUTS, "layout", layout, f"must be one of {list(LAYOUTS)}")
        if gru.bidirectional or getattr(gru, "proj_size", 0):
            raise ValueError("CrossbarGRU supports unidirectional GRUs without projections")
        bits = quant.weight_bits if quant is not None else None
        gran = quant.granularity if quant is not None else "channel"
        h = gru.hidden_size
        layers, idx = [], 0
        for layer in range(gru.num_layers):
            n_in = gru.input_size if layer == 0 else h
            mats = nn.ModuleDict()
            for key, m in gru_matrices(gru, layer, layout).items():
                mats[key] = CrossbarMatrix.from_matrix(
                    m.detach(), config, trials=trials, seed=layer_seed(seed, idx), bits=bits, granularity=gran,
                    groups=4 if key == "xh1" else 3, n_params=structural_params(layout, key, n_in, h, gru.bias))
                idx += 1
            layers.append(mats)
        if isinstance(gru, QuantGRU):
            acts, in_q = copy.deepcopy(gru.acts), copy.deepcopy(gru.input_quant)
        else:
            acts, in_q = nn.ModuleList([GateQuant() for _ in range(gru.num_layers)]), ActQuant()
            abits = quant.activation_bits if quant is not None else None
            for a in acts:
                a.configure(abits, quant.observer if quant else "ema")
            if quant is not None and quant.quantize_input:
                in_q.configure(abits, quant.observer)
        params = {n: p for n, p in gru.named_parameters() if n.startswith(("weight_", "bias_"))}
        xg = cls(layers, gru.input_size, h, gru.bias, layout, acts, in_q, params, gru.batch_first)
        return xg.to(next(gru.parameters()).device).eval()

    def matrices(self):
        """All :class:`CrossbarMatrix` modules (for cost accounting)."""
        return [m for layer in self.layers for m in layer.values()]

    @torch.no_grad()
    def program(self, seed: int = 0, config: CrossbarConfig | None = None, trials: int | None = None) -> None:
        """Program the trained parameters onto new device instances (array ``j``: ``layer_seed(seed, j)``)."""
        idx = 0
        for layer, mats in enumerate(self.layers):
            ws = gru_matrices(self, layer, self.layout)
            for key, m in mats.items():
                m.program(ws[key], config=config, trials=trials, seed=layer_seed(seed, idx))
                idx += 1

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[-1] != self.input_size:
            raise ValueError(f"CrossbarGRU: expected (batch, steps, {self.input_size}) or (trials, batch, steps, "
                             f"{self.input_size}), got {tuple(x.shape)}")
        if not self.batch_first:
            x = x.transpose(1, 2)
        seq = self.input_quant(x)
        finals = []
        for layer, mats in enumerate(self.layers):
            n_in = self.input_size if layer == 0 else self.hidden_size
            h_init = None if h0 is None else h0[:, layer] if h0.dim() == 4 else h0[layer].unsqueeze(0)
            ws = gru_matrices(self, layer, self.layout) if self.training else {}
            ps = {k: m.programmed(ws.get(k)) for k, m in mats.items()}
            if all(p.linear for p in ps.values()):
                w_x, b, w_h = _assemble(self.layout, {k: p.weights() for k, p in ps.items()}, n_in,
                                        self.hidden_size, self.bias)
                seq, h_last = _run_linear_layer(seq, w_x, b, w_h, h_init, self.acts[layer])
            else:
                seq, h_last = self._run_stepwise(seq, ps, h_init, self.acts[layer])
            finals.append(h_last)
        if not self.batch_first:
            seq = seq.transpose(1, 2)
        return seq, torch.stack(finals, 1)

    def _run_stepwise(self, x, mats, h0, acts):
        trials = next(iter(mats.values())).trials
        hid = self.hidden_size
        h = h0 if h0 is not None else x.new_zeros(trials, x.shape[1], hid)
        h = h.expand(trials, x.shape[1], hid)
        xs = x.expand(trials, *x.shape[1:])
        bias = self.bias

        def with_one(v):
            return _ones_col(v) if bias else v

        if self.layout == "fused":
            m = mats["xh1"]

            def preact(t, h):
                return m(with_one(torch.cat([xs[:, :, t], h], -1)))
        else:
            ma, mb = mats["x1"], mats["h1"]

            def preact(t, h):
                gi, gh = ma(with_one(xs[:, :, t])), mb(with_one(h))
                return torch.cat([gi[..., : 2 * hid] + gh[..., : 2 * hid], gi[..., 2 * hid :], gh[..., 2 * hid :]], -1)

        return _recurrence(preact, x.shape[2], h, acts)


# --------------------------------------------------------------------------------- sequence nets
class GRUNet(nn.Module):
    """A sequence model: :class:`QuantGRU` + :class:`~memristive.quant.QuantLinear` head.

    ``readout="last"``: ``(B, L, in) → (B, out)`` from the last state (classification);
    ``readout="all"``: ``(B, L, in) → (B, L, out)`` (per-step regression, e.g. state of charge).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, output_size: int,
                 readout: Literal["last", "all"] = "last", layout: Literal["fused", "split"] = "fused",
                 quant: QuantConfig | None = None, noise: WeightNoise | None = None) -> None:
        super().__init__()
        check(readout in ("last", "all"), "readout", readout, "must be 'last' or 'all'")
        self.readout = readout
        self.gru = QuantGRU(input_size, hidden_size, num_layers, layout=layout)
        self.head = QuantLinear(hidden_size, output_size)
        self.set_quant(quant, noise)

    def set_quant(self, quant: QuantConfig | None, noise: WeightNoise | None = None) -> "GRUNet":
        self.gru.set_quant(quant, noise)
        self.head.quant, self.head.noise = quant, noise
        return self

    @property
    def quant(self) -> QuantConfig | None:
        return self.gru.quant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1] if self.readout == "last" else out)


class CrossbarGRUNet(nn.Module):
    """A :class:`GRUNet` on crossbars: outputs ``(T, B, out)`` or ``(T, B, L, out)``.

    The head's parameters (``head_weight``, ``head_bias``) are trainable like the GRU's.
    """

    def __init__(self, gru: CrossbarGRU, head: CrossbarMatrix, readout: str = "last", head_bias: bool = True,
                 head_weight: torch.Tensor | None = None, head_bias_value: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gru, self.head, self.readout, self.has_head_bias = gru, head, readout, head_bias
        if head_weight is None:  # recover (out, in) and bias from the programmed matrix
            m = head.weights()[0]
            head_weight, head_bias_value = m[: m.shape[0] - int(head_bias)].t(), (m[-1] if head_bias else None)
        self.head_weight = nn.Parameter(head_weight.detach().clone())
        self.head_bias = nn.Parameter(head_bias_value.detach().clone()) if head_bias_value is not None else None

    @classmethod
    def from_net(cls, net: GRUNet, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0) -> "CrossbarGRUNet":
        quant = net.quant
        xg = CrossbarGRU.from_gru(net.gru, config, trials=trials, seed=seed)
        bits = quant.weight_bits if quant is not None else None
        gran = quant.granularity if quant is not None else "channel"
        head = CrossbarMatrix.from_matrix(net.head.matrix().detach(), config, trials=trials,
                                          seed=layer_seed(seed, len(xg.matrices())), bits=bits,
                                          granularity="tensor" if gran == "gate" else gran)
        return cls(xg, head, net.readout, net.head.bias is not None, net.head.weight, net.head.bias).eval()

    def matrices(self):
        return self.gru.matrices() + [self.head]

    @torch.no_grad()
    def export_to(self, net: GRUNet) -> GRUNet:
        """Write the (trained) parameters and activation ranges into a software :class:`GRUNet` of the
        same shape (e.g. after hardware-aware training); returns ``net``."""
        for name, p in self.gru.named_parameters():
            getattr(net.gru, name).copy_(p)
        net.gru.acts.load_state_dict(self.gru.acts.state_dict())
        net.gru.input_quant.load_state_dict(self.gru.input_quant.state_dict())
        net.head.weight.copy_(self.head_weight)
        if self.head_bias is not None:
            net.head.bias.copy_(self.head_bias)
        return net

    def head_matrix(self) -> torch.Tensor:
        """``[W_headᵀ; b_head]`` (differentiable)."""
        m = self.head_weight.t()
        return torch.cat([m, self.head_bias.unsqueeze(0)], 0) if self.head_bias is not None else m

    @torch.no_grad()
    def program(self, seed: int = 0, config: CrossbarConfig | None = None, trials: int | None = None) -> None:
        """Program the trained parameters onto new device instances (same seed rule as :meth:`from_net`)."""
        self.gru.program(seed, config, trials)
        self.head.program(self.head_matrix(), config=config, trials=trials, seed=layer_seed(seed, len(self.gru.matrices())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        feats = out[:, :, -1] if self.readout == "last" else out
        if self.has_head_bias:
            feats = _ones_col(feats)
        p = self.head.programmed(self.head_matrix() if self.training else None)
        if p.linear:
            w = p.weights()  # (T, in, out)
            if feats.dim() == 4:
                return torch.matmul(feats, w.unsqueeze(1))
            return torch.matmul(feats, w)
        if feats.dim() == 4:
            t, b, l, f = feats.shape
            return p(feats.reshape(t, b * l, f)).reshape(-1, b, l, p.scale.shape[-1])
        return p(feats)


def convert_gru(model: nn.Module, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0,
                quant: QuantConfig | None = None) -> nn.Module:
    """``GRUNet`` → :class:`CrossbarGRUNet`; ``nn.GRU``/``QuantGRU`` → :class:`CrossbarGRU`."""
    if isinstance(model, GRUNet):
        return CrossbarGRUNet.from_net(model, config, trials, seed)
    if isinstance(model, nn.GRU):
        return CrossbarGRU.from_gru(model, config, trials, seed, quant=quant)
    raise TypeError(f"convert_gru: expected a GRUNet or nn.GRU, got {type(model).__name__}")


@register_converter(nn.GRU)
def _convert_gru_layer(module, config, trials, seed):
    return CrossbarGRU.from_gru(module, config, trials=trials, seed=seed)


@register_converter(GRUNet)
def _convert_gru_net(module, config, trials, seed):
    return CrossbarGRUNet.from_net(module, config, trials=trials, seed=seed)
