"""Pulse programming of VTEAM devices and in-situ training with Dynamic Threshold + Gradient Accumulation.

Reconstruction of Shen, Guo, Wang, Duan, "DTGA: an in-situ training scheme for memristor neural networks
with high performance", Appl. Intell. 55:167 (2025). The paper's full text is not public; the
formulas below are the standard ones (shared/research/algorithms.md §1.4) and every alternative is a
named option. See docs/dtga.md for the choices and the measurements behind the defaults.

Synapse: a differential pair of VTEAM devices per weight, ``W = (G⁺ − G⁻)/k`` with
``k = (G_max − G_min)/w_max`` (nominal device). Forward on the crossbar engine, backprop in
software with the weights *read* from the array, then every weight update becomes pulses::

    U  = −lr·∂L/∂W                                   ideal update of this mini-batch
    A  = A + U   (GA)      or   A = U   (no GA)        accumulator
    θ  = fixed: threshold·Δw₀ (baseline, ga)  |  dynamic (dt, dtga), dt_rule:
           device: θ_ij = dt_factor·|Δw₁(state_ij)|   (what one pulse can do at the current state)
           layer:  θ_l  = dt_kappa·std(A_l)            (per layer, per iteration)
           decay:  θ    = threshold·Δw₀·dt_decay^epoch
    fire = |A| ≥ θ ;  n = clamp(round(|A|/|Δw₁|), 1, max_pulses) where fire, else 0
    apply n pulses to one device of the pair (pair_rule):
           headroom: the device with more state headroom in the needed direction (G⁺ SET or G⁻ RESET
                     for A > 0; G⁺ RESET or G⁻ SET for A < 0)
           set_only: A > 0 → SET G⁺,  A < 0 → SET G⁻
    residual (GA only), ga_residual:
           measured: A ← A − (W_after − W_before)     (read back; nothing is ever lost)
           nominal:  A ← A − n·sign(A)·|Δw₁|          (the controller's prediction; nothing is lost)
           reset:    A ← 0 where fired                (BP-GA style; the remainder is dropped)

``Δw₀`` is the nominal weight step of one pulse at mid state (mean of SET and RESET); ``Δw₁`` is the
step of one pulse of the chosen polarity on the chosen device at its current (read) state, predicted
with the *nominal* device model: the controller knows neither the D2D parameters nor the P2P noise.

Open-loop programming predicts the pulse count from the desired change with the nominal model
(``n = round((F(s_target) − F(s_now))/u₁)``, ``F = ∫ds/f`` — exact for every window);
write-verify repeats read → predict → pulse until ``|G − G_target| ≤ tol·(G_max − G_min)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import check
from ..crossbar import Crossbar, CrossbarConfig
from ..devices import LinearDevice
from ..devices.vteam import (
    Pulse,
    Variability,
    VTEAMArray,
    VTEAMDevice,
    advance,
    as_vteam,
    conductance,
    drive,
    pulse_train,
    state_from_conductance,
    window_integral,
)

SCHEMES = ("baseline", "dt", "ga", "dtga")


# ============================================================================ pulse programming
def _nominal_u(dev: VTEAMDevice, pulse: Pulse) -> tuple[float, float]:
    rp = dev.rate_params()
    u_set = float(drive(torch.tensor(pulse.v_set, dtype=torch.float64), **rp)) * pulse.width
    u_reset = float(drive(torch.tensor(pulse.v_reset, dtype=torch.float64), **rp)) * pulse.width
    return u_set, u_reset


def predict_pulses(g_now: torch.Tensor, g_target: torch.Tensor, dev: VTEAMDevice, pulse: Pulse) -> torch.Tensor:
    """Signed pulse counts (``+`` SET, ``−`` RESET) that move ``g_now`` to ``g_target`` on the nominal
    device: ``n = round((F(s_target) − F(s_now))/u₁)``."""
    s_now = state_from_conductance(g_now, dev.r_on, dev.r_off, dev.iv).clamp(0, 1)
    s_tgt = state_from_conductance(g_target, dev.r_on, dev.r_off, dev.iv).clamp(0, 1)
    u_set, u_reset = _nominal_u(dev, pulse)
    up = s_tgt > s_now  # towards R_off: RESET
    u_need = window_integral(s_now, s_tgt, torch.where(up, 1.0, -1.0), **dev.window_params())
    n_reset = torch.round(u_need / u_reset)
    n_set = torch.round(u_need / u_set)
    return torch.where(up, -n_reset, n_set)


@torch.no_grad()
def program_open_loop(array: VTEAMArray, g_target: torch.Tensor, max_pulses: int | None = None,
                      generator: torch.Generator | None = None) -> dict:
    """One shot: read, predict the pulse count with the nominal model, apply, no verify.

    Returns ``pulses`` (per device, signed), ``set``/``reset`` totals, ``energy`` (J) and ``error``
    (``G − G_target``, S).
    """
    n = predict_pulses(array.conductance(), g_target, array.dev, array.pulse)
    if max_pulses is not None:
        n = n.clamp(-max_pulses, max_pulses)
    stats = array.apply_pulses(n, generator)
    return {"pulses": n, **stats, "error": array.conductance() - g_target}


@torch.no_grad()
def program_write_verify(array: VTEAMArray, g_target: torch.Tensor, tol: float = 0.01, max_iters: int = 20,
                         max_pulses: int | None = None, generator: torch.Generator | None = None) -> dict:
    """Closed loop: until ``|G − G_target| ≤ tol·(G_max − G_min)`` (nominal range) or ``max_iters``
    rounds, apply the open-loop prediction (at least one pulse, at most ``max_pulses`` per round) to
    the devices not yet within tolerance. Returns per-device pulse totals, energy, rounds, converged
    fraction and the final error."""
    check(tol > 0, "tol", tol, "must be > 0")
    check(max_iters >= 1, "max_iters", max_iters, "must be >= 1")
    dev = array.dev
    band = tol * (dev.g_max - dev.g_min)
    total = torch.zeros_like(array.state)
    n_set = n_reset = energy = 0.0
    rounds = 0
    for rounds in range(1, max_iters + 1):
        g = array.conductance()
        err = g - g_target
        todo = err.abs() > band
        if not bool(todo.any()):
            rounds -= 1
            break
        n = predict_pulses(g, g_target, dev, array.pulse)
        n = torch.where(n == 0, -torch.sign(err), n)  # out of band: at least one pulse towards the target
        if max_pulses is not None:
            n = n.clamp(-max_pulses, max_pulses)
        n = torch.where(todo, n, torch.zeros_like(n))
        stats = array.apply_pulses(n, generator)
        total += n.abs()
        n_set += stats["set"]
        n_reset += stats["reset"]
        energy += stats["energy"]
    err = array.conductance() - g_target
    return {"pulses": total, "set": n_set, "reset": n_reset, "energy": energy, "rounds": rounds,
            "converged": float((err.abs() <= band).float().mean()), "error": err}


# ============================================================================ update rule
@dataclass
class UpdateRule:
    """How weight updates become pulses (see the module docstring). ``scheme`` switches DT and GA on."""

    scheme: Literal["baseline", "dt", "ga", "dtga"] = "dtga"
    threshold: float = 0.5
    dt_rule: Literal["device", "layer", "decay"] = "layer"
    dt_factor: float = 0.5
    dt_kappa: float = 1.0
    dt_decay: float = 0.7
    ga_residual: Literal["measured", "nominal", "reset"] = "measured"
    max_pulses: int = 8
    pair_rule: Literal["headroom", "set_only"] = "headroom"

    def __post_init__(self) -> None:
        check(self.scheme in SCHEMES, "update.scheme", self.scheme, f"must be one of {list(SCHEMES)}")
        check(self.threshold >= 0, "update.threshold", self.threshold, "must be >= 0 (units of the nominal pulse step)")
        check(self.dt_rule in ("device", "layer", "decay"), "update.dt_rule", self.dt_rule,
              "must be one of ['device', 'layer', 'decay']")
        check(self.dt_factor >= 0, "update.dt_factor", self.dt_factor, "must be >= 0")
        check(self.dt_kappa >= 0, "update.dt_kappa", self.dt_kappa, "must be >= 0")
        check(0 < self.dt_decay <= 1, "update.dt_decay", self.dt_decay, "must lie in (0, 1]")
        check(self.ga_residual in ("measured", "nominal", "reset"), "update.ga_residual", self.ga_residual,
              "must be one of ['measured', 'nominal', 'reset']")
        check(isinstance(self.max_pulses, int) and self.max_pulses >= 1, "update.max_pulses", self.max_pulses,
              "must be an integer >= 1")
        check(self.pair_rule in ("headroom", "set_only"), "update.pair_rule", self.pair_rule,
              "must be 'headroom' or 'set_only'")

    @property
    def dynamic(self) -> bool:
        return self.scheme in ("dt", "dtga")

    @property
    def accumulate(self) -> bool:
        return self.scheme in ("ga", "dtga")


def threshold_for(rule: UpdateRule, acc: torch.Tensor, step: torch.Tensor, dw0: float, epoch: int) -> torch.Tensor:
    """The update threshold θ (broadcastable to ``acc``), per the rule's scheme and ``dt_rule``."""
    if not rule.dynamic:
        return torch.as_tensor(rule.threshold * dw0, dtype=acc.dtype, device=acc.device)
    if rule.dt_rule == "device":
        return rule.dt_factor * step
    if rule.dt_rule == "layer":
        # one threshold per layer and trial: κ·std of the accumulator over that layer's weights
        flat = acc.flatten(1)
        mean = flat.mean(dim=1)
        var = ((flat * flat).mean(dim=1) - mean * mean).clamp(min=0) * (flat.shape[1] / max(flat.shape[1] - 1, 1))
        return rule.dt_kappa * var.sqrt().reshape(-1, *(1,) * (acc.dim() - 1))
    return torch.as_tensor(rule.threshold * dw0 * rule.dt_decay ** epoch, dtype=acc.dtype, device=acc.device)


def pulses_for_update(rule: UpdateRule, acc: torch.Tensor, step: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Pulse counts (≥ 0): ``clamp(round(|A|/step), 1, max_pulses)`` where ``|A| ≥ θ`` (and A ≠ 0), else 0."""
    mag = acc.abs()
    fire = (mag - theta).sign_().add_(1).clamp_(max=1) * mag.sign()  # float mask of |A| >= θ and A != 0
    return (mag / step.clamp(min=1e-12)).round_().clamp_(1, rule.max_pulses).mul_(fire)


# ============================================================================ the in-situ network
class VTEAMLinear(nn.Module):
    """One weight matrix ``(inputs[+1 bias row], outputs)`` stored in VTEAM differential pairs.

    ``devices.state`` has shape ``(trials, 2, rows, cols)``: index 0 is G⁺, 1 is G⁻. The matmul runs on
    a :class:`memristive.crossbar.Crossbar` whose conductances are refreshed from the device states.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, w_max: float, dev: VTEAMDevice, pulse: Pulse,
                 variability: Variability, trials: int, d2d_sigma, p2p_sigma, generator: torch.Generator,
                 crossbar: CrossbarConfig, substeps: int = 32) -> None:
        super().__init__()
        self.in_features, self.out_features, self.has_bias = in_features, out_features, bias
        rows = in_features + int(bias)
        self.w_max = float(w_max)
        self.k = (dev.g_max - dev.g_min) / self.w_max
        self.devices = VTEAMArray(dev, pulse, trials, (2, rows, out_features), variability, d2d_sigma, p2p_sigma,
                                  generator, substeps=substeps)
        self.crossbar = Crossbar(torch.zeros(trials, rows, out_features), torch.zeros(trials, rows, out_features),
                                 self.k, crossbar)
        # nominal model of the controller: state ↔ conductance and the per-pulse drive
        self.u_set_nom, self.u_reset_nom = _nominal_u(dev, pulse)
        s_mid = torch.tensor(0.5, dtype=torch.float64)
        g_mid = conductance(s_mid, dev.r_on, dev.r_off, dev.iv)
        wp = dev.window_params()
        d_set = conductance(advance(s_mid, torch.tensor(self.u_set_nom, dtype=torch.float64), **wp), dev.r_on, dev.r_off,
                            dev.iv) - g_mid
        d_reset = g_mid - conductance(advance(s_mid, torch.tensor(self.u_reset_nom, dtype=torch.float64), **wp),
                                      dev.r_on, dev.r_off, dev.iv)
        self.dw0 = float((d_set + d_reset) / 2) / self.k
        self.g_mid = float(g_mid)
        # GA accumulator and the running sum of the ideal updates (bookkeeping: with GA,
        # update_sum = W − W_init + accumulator at all times, i.e. no update is ever lost)
        self.register_buffer("accumulator", torch.zeros(trials, rows, out_features))
        self.register_buffer("update_sum", torch.zeros(trials, rows, out_features))

    @property
    def trials(self) -> int:
        return self.devices.state.shape[0]

    def conductances(self) -> torch.Tensor:
        return self.devices.conductance()

    def weights(self, g: torch.Tensor | None = None) -> torch.Tensor:
        """Weights read from the array, ``(trials, rows, cols)``."""
        g = self.conductances() if g is None else g
        return (g[:, 0] - g[:, 1]) / self.k

    @torch.no_grad()
    def program_weights(self, w: torch.Tensor) -> None:
        """Ideal initial programming: ``G± = G(s=½) ± k·W/2`` (each device's own R_on/R_off)."""
        w = w.to(self.devices.state.dtype)
        g = torch.stack([self.g_mid + self.k * w / 2, self.g_mid - self.k * w / 2], dim=-3)
        self.devices.set_conductance(g.expand_as(self.devices.state))

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, in) or (T, B, in), entries of any scale: the DAC full scale is set to max|x|, so
        read voltages never exceed ``v_read``; the output is rescaled digitally."""
        g = self.conductances() if g is None else g
        # in-place refresh, so the crossbar's derived-tensor cache sees the change (version counter)
        self.crossbar.g_pos.copy_(g[:, 0])
        self.crossbar.g_neg.copy_(g[:, 1])
        if self.has_bias:
            ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
            x = torch.cat([x, ones], dim=-1)
        scale = x.detach().abs().amax().clamp(min=1e-12)
        return self.crossbar.matmul(x / scale) * scale

    # ------------------------------------------------------------------ the update
    # Masks are float 0/1 tensors combined arithmetically: on CPU this is several times faster than
    # torch.where / boolean indexing, and it runs unchanged on CUDA.
    @staticmethod
    def _pick(t: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The chosen device's value of a per-device ``(T, 2, rows, cols)`` buffer (scalars pass through)."""
        return t if t.dim() == 0 else t[:, 1] + pos * (t[:, 0] - t[:, 1])

    @torch.no_grad()
    def plan(self, g: torch.Tensor, sgn: torch.Tensor, rule: UpdateRule) -> tuple[torch.Tensor, ...]:
        """For the wanted weight-change sign ``sgn`` (+1 up, −1 down) return float masks and values
        ``(pos, gsign, g_chosen, step)``: ``pos`` = 1 where G⁺ (else G⁻) gets the pulses, ``gsign`` the
        chosen device's conductance direction (+1 SET, −1 RESET), its read conductance, and the
        predicted |ΔW| of one pulse (nominal model at the read state)."""
        dev = self.devices.dev
        g_pos, g_neg = g[:, 0], g[:, 1]
        # state estimates from the reads (nominal model); s = 0 is R_on, s = 1 is R_off
        s_pos = state_from_conductance(g_pos, dev.r_on, dev.r_off, dev.iv)
        s_neg = state_from_conductance(g_neg, dev.r_on, dev.r_off, dev.iv)
        if rule.pair_rule == "headroom":
            # W up: SET G+ (headroom s+) or RESET G- (1-s-); W down: RESET G+ (1-s+) or SET G- (s-)
            # -> choose G+ iff sgn·(s+ + s- − 1) >= 0
            pos = (sgn * (s_pos + s_neg - 1)).sign_().add_(1).clamp_(max=1)
        else:
            pos = sgn.clamp(min=0)
        gsign = sgn * (2 * pos - 1)
        is_set = gsign.clamp(min=0)
        g_c = g_neg + pos * (g_pos - g_neg)
        s_c = (s_neg + pos * (s_pos - s_neg)).clamp_(0, 1)
        u1 = self.u_reset_nom + is_set * (self.u_set_nom - self.u_reset_nom)
        g_next = conductance(advance(s_c, u1, **dev.window_params()), dev.r_on, dev.r_off, dev.iv)
        return pos, gsign, g_c, (g_next - g_c).abs_().div_(self.k)

    @torch.no_grad()
    def apply_update(self, acc: torch.Tensor, rule: UpdateRule, epoch: int, g: torch.Tensor,
                     generator: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        """Turn the accumulator into pulses, apply them, return ``(new accumulator, stats)``.

        Only one device of each pair is pulsed, so the work is done on pair-sized tensors.
        """
        arr = self.devices
        sgn = acc.sign()
        pos, gsign, g_c, step = self.plan(g, sgn, rule)
        theta = threshold_for(rule, acc, step, self.dw0, epoch)
        n = pulses_for_update(rule, acc, step, theta)
        state = arr.state
        s_c = self._pick(state, pos)
        s_new = pulse_train(s_c, n * gsign, self._pick(arr.u_set, pos), self._pick(arr.u_reset, pos),
                            arr.p2p_sigma if arr.p2p_sigma.dim() == 0 else arr.p2p_sigma[:, 0], arr.var.p2p_mode,
                            generator, substeps=arr.substeps,
                            **arr.dev.window_params())
        ds = s_new - s_c
        dpos = pos * ds
        state[:, 0] += dpos
        state[:, 1] += ds - dpos
        g_new = conductance(s_new, self._pick(arr.r_on, pos), self._pick(arr.r_off, pos), arr.dev.iv)
        pulse = arr.pulse
        is_set = gsign.clamp(min=0)
        n_set = n * is_set
        v2 = pulse.v_reset ** 2 + is_set * (pulse.v_set ** 2 - pulse.v_reset ** 2)
        total_set = float(n_set.sum())
        stats = {
            "set": total_set,
            "reset": float(n.sum()) - total_set,
            "energy": float((n * v2 * (g_c + g_new)).sum()) * pulse.width / 2,
            # row-parallel programming: per row a SET phase and a RESET phase as long as its longest train
            "program_time": float((n_set.amax(dim=-1) + (n - n_set).amax(dim=-1)).sum(dim=-1).mean()) * pulse.width,
            "fired": float(n.sign().mean()),
        }
        if not rule.accumulate:
            return torch.zeros_like(acc), stats
        if rule.ga_residual == "measured":
            # realised weight change, read back: +ΔG/k on G+, −ΔG/k on G−
            acc = acc - (g_new - g_c) * (2 * pos - 1) / self.k
        elif rule.ga_residual == "nominal":
            acc = acc - sgn * n * step
        else:
            acc = acc * (1 - n.sign())
        return acc, stats


ACTIVATIONS = {
    "sigmoid": (torch.sigmoid, lambda z, a: a * (1 - a)),
    "relu": (torch.relu, lambda z, a: (z > 0).to(z.dtype)),
    "tanh": (torch.tanh, lambda z, a: 1 - a * a),
    "abs": (torch.abs, lambda z, a: torch.sign(z)),
}


@dataclass
class InSituConfig:
    """An MLP trained in situ on VTEAM differential pairs (see the module docstring)."""

    sizes: list[int] = field(default_factory=lambda: [784, 100, 10])
    activation: Literal["sigmoid", "relu", "tanh", "abs"] = "sigmoid"
    bias: bool = True
    w_max: list[float] = field(default_factory=lambda: [1.0, 4.0])
    init_gain: float = 1.0
    lr: float = 2.0
    batch_size: int = 100
    device: str | VTEAMDevice = "dtga"
    pulse: Pulse = field(default_factory=Pulse)
    variability: Variability = field(default_factory=lambda: Variability.noise_factor(0.0))
    update: UpdateRule = field(default_factory=UpdateRule)
    v_read: float = 0.01
    substeps: int = 32

    def __post_init__(self) -> None:
        check(len(self.sizes) >= 2 and all(int(s) >= 1 for s in self.sizes), "sizes", self.sizes,
              "need at least two positive layer sizes")
        check(len(self.w_max) == len(self.sizes) - 1, "w_max", self.w_max,
              f"need one value per weight layer ({len(self.sizes) - 1})")
        for w in self.w_max:
            check(math.isfinite(w) and w > 0, "w_max", w, "each must be > 0")
        check(self.activation in ACTIVATIONS, "activation", self.activation, f"must be one of {sorted(ACTIVATIONS)}")
        check(self.lr > 0, "lr", self.lr, "must be > 0")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        check(self.init_gain >= 0, "init_gain", self.init_gain, "must be >= 0")
        self.device = as_vteam(self.device)
        self.pulse.check_device(self.device)
        self.device.check_read_voltage(self.v_read, "v_read")


class InSituMLP(nn.Module):
    """``T`` Monte Carlo instances of an MLP whose weights live in VTEAM pairs, trained in situ.

    ``noise`` (the paper's noise factor, D2D = P2P) may be one value or one per trial, so a whole
    robustness sweep runs as one batched model.
    """

    def __init__(self, cfg: InSituConfig, trials: int = 1, seed: int = 0, noise: float | list[float] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        self.seed = seed
        d2d = p2p = None
        if noise is not None:
            d2d = p2p = torch.as_tensor(noise, dtype=torch.float32)
            if d2d.dim() == 0:
                d2d = p2p = float(noise)
        dev = cfg.device
        xcfg = CrossbarConfig(memristor=LinearDevice(g_min=dev.g_min, g_max=dev.g_max), v_read=cfg.v_read)
        layers = []
        for i, (a, b) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:])):
            layers.append(VTEAMLinear(a, b, cfg.bias, cfg.w_max[i], dev, cfg.pulse, cfg.variability, trials, d2d, p2p,
                                      gen, xcfg, cfg.substeps))
        self.layers = nn.ModuleList(layers)
        # initial weights: Glorot-uniform, the same for every trial (trials differ by their devices)
        for layer in self.layers:
            rows = layer.in_features + int(layer.has_bias)
            bound = cfg.init_gain * math.sqrt(6.0 / (layer.in_features + layer.out_features))
            w = (torch.rand(rows, layer.out_features, generator=gen) * 2 - 1) * bound
            if layer.has_bias:
                w[-1] = 0
            limit = 0.9 * (layer.g_mid - dev.g_min) * 2 / layer.k
            check(bound <= limit, "init_gain", cfg.init_gain,
                  f"initial weights up to {bound:.3g} do not fit around mid state (max {limit:.3g}); raise w_max")
            layer.program_weights(w)
        self._pulse_gen: torch.Generator | None = None  # P2P draws; created on the devices' torch device
        self.register_buffer("epochs_done", torch.zeros((), dtype=torch.long))

    @property
    def trials(self) -> int:
        return self.layers[0].trials

    def _pulse_generator(self, device) -> torch.Generator:
        if self._pulse_gen is None or self._pulse_gen.device != torch.device(device):
            self._pulse_gen = torch.Generator(device=device).manual_seed(self.seed + 12345)
        return self._pulse_gen

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pulse_gen"] = None  # generators are not picklable
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(T, B, classes)``."""
        act = ACTIVATIONS[self.cfg.activation][0]
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = act(h)
        return h

    def weights(self) -> list[torch.Tensor]:
        return [layer.weights() for layer in self.layers]

    @torch.no_grad()
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """One mini-batch: forward on the arrays, backprop in software, pulse update. Returns stats."""
        act, dact = ACTIVATIONS[self.cfg.activation]
        gs = [layer.conductances() for layer in self.layers]
        ws = [layer.weights(g) for layer, g in zip(self.layers, gs)]
        inputs, pre, h = [], [], x
        for i, (layer, g) in enumerate(zip(self.layers, gs)):
            a_in = h if h.dim() == 3 else h.unsqueeze(0)
            if layer.has_bias:
                a_in = torch.cat([a_in, torch.ones(*a_in.shape[:-1], 1, dtype=a_in.dtype, device=a_in.device)], dim=-1)
            inputs.append(a_in)
            z = layer(h, g)
            pre.append(z)
            h = act(z) if i < len(self.layers) - 1 else z
        logp = torch.log_softmax(h, dim=-1)
        loss = -logp.gather(-1, y.expand(h.shape[0], -1).unsqueeze(-1)).mean(dim=(1, 2))
        delta = (logp.exp() - nn.functional.one_hot(y, h.shape[-1]).to(h.dtype)) / x.shape[0]
        grads = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            grads[i] = inputs[i].transpose(-1, -2) @ delta
            if i > 0:
                w_in = ws[i][:, : self.layers[i].in_features]
                z_prev = pre[i - 1]
                delta = (delta @ w_in.transpose(-1, -2)) * dact(z_prev, act(z_prev))
        rule = self.cfg.update
        stats = {"set": 0.0, "reset": 0.0, "energy": 0.0, "program_time": 0.0, "fired": 0.0}
        for i, layer in enumerate(self.layers):
            upd = -self.cfg.lr * grads[i]
            layer.update_sum += upd
            acc = layer.accumulator + upd if rule.accumulate else upd
            acc, st = layer.apply_update(acc, rule, int(self.epochs_done), gs[i], self._pulse_generator(acc.device))
            layer.accumulator.copy_(acc)
            for k in stats:
                stats[k] += st[k] / (len(self.layers) if k == "fired" else 1)
        stats["loss"] = loss
        return stats

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: bool = True,
                    desc: str = "in-situ epoch") -> dict:
        """One pass over ``(x, y)`` in shuffled mini-batches. Returns pulses, energy, times, mean loss."""
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=generator)
        bs = self.cfg.batch_size
        tot = {"set": 0.0, "reset": 0.0, "energy": 0.0, "program_time": 0.0}
        loss_sum = torch.zeros(self.trials, device=self.epochs_done.device)
        fired = 0.0
        steps = range(0, len(x), bs)
        for i in tqdm(steps, desc=desc, disable=not progress, leave=False):
            idx = perm[i : i + bs]
            dev = self.epochs_done.device
            st = self.train_step(x[idx].to(dev), y[idx].to(dev))
            for k in tot:
                tot[k] += st[k]
            loss_sum += st["loss"] * len(idx)
            fired += st["fired"]
        self.epochs_done += 1
        return {**tot, "pulses": tot["set"] + tot["reset"], "loss": (loss_sum / len(x)).cpu().tolist(),
                "fired_fraction": fired / max(1, len(steps)), "wall_s": time.perf_counter() - t0}

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """Per-trial accuracy ``(T,)``."""
        correct = torch.zeros(self.trials, device=self.epochs_done.device)
        gs = [layer.conductances() for layer in self.layers]
        act = ACTIVATIONS[self.cfg.activation][0]
        for i in range(0, len(x), batch_size):
            h = x[i : i + batch_size].to(self.epochs_done.device)
            for j, (layer, g) in enumerate(zip(self.layers, gs)):
                h = layer(h, g)
                if j < len(self.layers) - 1:
                    h = act(h)
            correct += (h.argmax(-1) == y[i : i + batch_size].to(h.device)).sum(-1).float()
        return (correct / len(x)).cpu()


def train_insitu(model: InSituMLP, x_train, y_train, x_test, y_test, epochs: int, seed: int = 0,
                 progress: bool = True, desc: str = "in-situ", on_epoch=None) -> list[dict]:
    """Train ``epochs`` epochs; after each, record per-trial test accuracy, pulses, energy and times."""
    gen = torch.Generator().manual_seed(seed)
    history = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for e in bar:
        st = model.train_epoch(x_train, y_train, gen, progress=progress, desc=f"{desc} epoch {e + 1}")
        acc = model.accuracy(x_test, y_test)
        row = {"epoch": e + 1, "accuracy": acc.tolist(), "accuracy_mean": float(acc.mean()), **st}
        history.append(row)
        bar.set_postfix(acc=f"{100 * float(acc.mean()):.2f}%")
        if on_epoch is not None:
            on_epoch(row)
    return history
