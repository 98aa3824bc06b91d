"""Pulse programming of VTEAM devices and in-situ training with Dynamic Threshold + Gradient Accumulation.

Reconstruction of Shen, Guo, Wang, Duan, "DTGA: an in-situ training scheme for memristor neural networks
with high performance", Appl. Intell. 55:167 (2025). The paper's full text is not public; the
formulas below are the standard ones (docs/dtga.md) and every alternative is a named option.

Synapse: a differential pair of VTEAM devices per weight on an ordinary memristive
:class:`~memristive.crossbar.Crossbar` (``memristor`` = the :class:`VTEAMDevice`); weights and
conductances are related only through the crossbar's mapping. Forward through the crossbar, gradients
from autograd (with respect to the crossbar's conductances), then every weight update becomes pulses
applied through the devices' pulse response to the crossbar's conductance buffers::

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
           nominal:  A ← A − the change the controller's nominal model predicts for the train
           measured: A ← A − (W_after − W_before), read from the devices (controller = read only)
           reset:    A ← 0 where fired                (BP-GA style; the remainder is dropped)

What the controller knows (``controller``): ``open_loop`` — it never reads a device; it plans with its
own nominal model of every device's conductance, which starts at the programmed targets and follows
each train's predicted effect. ``read`` — every device is read once before each update (2 reads per
weight and step, counted in ``reads``); the change a train made is the difference of two reads.
``Δw₀`` is the nominal weight step of one pulse at mid state (mean of SET and RESET); ``Δw₁`` is the
step of one pulse of the chosen polarity on the chosen device at its known state, predicted with the
*nominal* device: the controller knows neither the D2D parameters nor the P2P noise.

Open-loop programming predicts the pulse count from the desired change with the nominal model
(``n = round((F(s_target) − F(s_now))/u₁)``, ``F = ∫ds/f`` — exact for every window);
write-verify repeats read → predict → pulse until ``|G − G_target| ≤ tol·(G_max − G_min)``.

Endurance (``DTGAConfig.endurance``, default off): every pulse of a train is charged to the pulsed
device through :class:`memristive.endurance.Wear` (each device's own range ``[1/R_off, 1/R_on]``, D2D
included): after ``n_th`` pulses its window narrows, past its failure count it sticks. The controller
is not told (its open-loop model keeps predicting a fresh device); ``measured`` residuals and the
energy see what the worn device did.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import ConfigError, check
from ..crossbar import Crossbar
from ..crossbar.mapping import Mapping, mapping_from_spec
from ..devices.vteam import Variability, VTEAMCells, VTEAMDevice, as_vteam, pulse_energy, window_integral
from ..endurance import Endurance, Wear, as_endurance, wear_stats

SCHEMES = ("baseline", "dt", "ga", "dtga")
DT_RULES = ("device", "layer", "decay")


# ============================================================================ pulse programming
def predict_pulses(g_now: torch.Tensor, g_target: torch.Tensor, dev: VTEAMDevice) -> torch.Tensor:
    """Signed pulse counts (``+`` SET, ``−`` RESET) of ``dev.write`` that move ``g_now`` to ``g_target``
    on the nominal device: ``n = round((F(s_target) − F(s_now))/u₁)``."""
    s_now, s_tgt = dev.state(g_now), dev.state(g_target)
    u_set, u_reset = dev.pulse_drives()
    up = s_tgt > s_now  # towards R_off: RESET
    u_need = window_integral(s_now, s_tgt, torch.where(up, 1.0, -1.0), **dev.window_params())
    return torch.where(up, -torch.round(u_need / u_reset), torch.round(u_need / u_set))


def _totals(n: torch.Tensor, g_before: torch.Tensor, g_after: torch.Tensor, dev: VTEAMDevice) -> dict:
    return {"set": float(n.clamp(min=0).sum()), "reset": float((-n).clamp(min=0).sum()),
            "energy": float(pulse_energy(n.clamp(min=0), (-n).clamp(min=0), g_before, g_after, dev.write).sum())}


@torch.no_grad()
def program_open_loop(cells: VTEAMCells, g: torch.Tensor, g_target: torch.Tensor, max_pulses: int | None = None,
                      generator: torch.Generator | None = None) -> dict:
    """One shot: predict the pulse count from ``g`` with the nominal model, apply it, no verify.

    Returns ``g`` (after), ``pulses`` (per device, signed), ``set``/``reset`` totals, ``energy`` (J) and
    ``error`` (``G − G_target``, S).
    """
    n = predict_pulses(g, g_target, cells.dev)
    if max_pulses is not None:
        n = n.clamp(-max_pulses, max_pulses)
    g_new = cells.pulse(g, n, generator)
    return {"g": g_new, "pulses": n, **_totals(n, g, g_new, cells.dev), "error": g_new - g_target}


@torch.no_grad()
def program_write_verify(cells: VTEAMCells, g: torch.Tensor, g_target: torch.Tensor, tol: float = 0.01,
                         max_iters: int = 20, max_pulses: int | None = None,
                         generator: torch.Generator | None = None) -> dict:
    """Closed loop: until ``|G − G_target| ≤ tol·(G_max − G_min)`` (nominal range) or ``max_iters``
    rounds, apply the open-loop prediction (at least one pulse, at most ``max_pulses`` per round) to
    the devices not yet within tolerance. Returns ``g``, per-device pulse totals, energy, rounds, reads,
    converged fraction and the final error."""
    check(tol > 0, "tol", tol, "must be > 0")
    check(max_iters >= 1, "max_iters", max_iters, "must be >= 1")
    dev = cells.dev
    band = tol * dev.g_range
    total = torch.zeros_like(g)
    n_set = n_reset = energy = 0.0
    rounds = 0
    for rounds in range(1, max_iters + 1):
        err = g - g_target
        todo = err.abs() > band
        if not bool(todo.any()):
            rounds -= 1
            break
        n = predict_pulses(g, g_target, dev)
        n = torch.where(n == 0, -torch.sign(err), n)  # out of band: at least one pulse towards the target
        if max_pulses is not None:
            n = n.clamp(-max_pulses, max_pulses)
        n = torch.where(todo, n, torch.zeros_like(n))
        g_new = cells.pulse(g, n, generator)
        st = _totals(n, g, g_new, dev)
        g = g_new
        total += n.abs()
        n_set += st["set"]
        n_reset += st["reset"]
        energy += st["energy"]
    err = g - g_target
    return {"g": g, "pulses": total, "set": n_set, "reset": n_reset, "energy": energy, "rounds": rounds,
            "reads": g.numel() * (rounds + 1),  # every device read before each round and once at the end
            "converged": float((err.abs() <= band).float().mean()), "error": err}


# ============================================================================ update rule
@dataclass
class UpdateRule:
    """How weight updates become pulses (see the module docstring). ``scheme`` switches DT and GA on."""

    scheme: Literal["baseline", "dt", "ga", "dtga"] = "dtga"
    threshold: float = 0.5
    dt_rule: Literal["device", "layer", "decay"] = "device"
    dt_factor: float = 0.5
    dt_kappa: float = 1.0
    dt_decay: float = 0.7
    controller: Literal["open_loop", "read"] = "open_loop"
    ga_residual: Literal["nominal", "measured", "reset"] = "nominal"
    max_pulses: int = 8
    pair_rule: Literal["headroom", "set_only"] = "headroom"

    def __post_init__(self) -> None:
        check(self.scheme in SCHEMES, "update.scheme", self.scheme, f"must be one of {list(SCHEMES)}")
        check(math.isfinite(self.threshold) and self.threshold >= 0, "update.threshold", self.threshold,
              "must be >= 0 (units of the nominal pulse step)")
        check(self.dt_rule in DT_RULES, "update.dt_rule", self.dt_rule, f"must be one of {list(DT_RULES)}")
        check(self.dt_factor >= 0, "update.dt_factor", self.dt_factor, "must be >= 0")
        check(self.dt_kappa >= 0, "update.dt_kappa", self.dt_kappa, "must be >= 0")
        check(0 < self.dt_decay <= 1, "update.dt_decay", self.dt_decay, "must lie in (0, 1]")
        check(self.controller in ("open_loop", "read"), "update.controller", self.controller,
              "must be 'open_loop' or 'read'")
        check(self.ga_residual in ("nominal", "measured", "reset"), "update.ga_residual", self.ga_residual,
              "must be one of ['nominal', 'measured', 'reset']")
        check(self.ga_residual != "measured" or self.controller == "read", "update.ga_residual", self.ga_residual,
              "'measured' needs controller='read' (an open-loop controller never reads a device); "
              "use 'nominal' or 'reset'")
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


def nominal_step(dev: VTEAMDevice, weight_change) -> float:
    """``Δw₀``: the weight step of one pulse of the nominal device at its mid state (mean of SET and
    RESET), via the pulse response; ``weight_change(d_pos)`` maps a conductance change of G⁺ to weight."""
    g_mid = torch.full((2,), dev.g_mid, dtype=torch.float64)
    dg = dev.pulse_change(g_mid, torch.tensor([1.0, -1.0], dtype=torch.float64))
    return float(weight_change((dg[0] - dg[1]) / 2))


def split_pair(pos: torch.Tensor, d: torch.Tensor, single: bool) -> tuple[torch.Tensor, torch.Tensor | float]:
    """A change ``d`` of each pair's chosen device (``pos`` = 1: G⁺, 0: G⁻) as ``(change of G⁺, change of
    G⁻)``; ``single`` (only G⁺ is trained): ``(d, 0)``."""
    if single:
        return d, 0.0
    d_pos = pos * d
    return d_pos, d - d_pos


# Masks are float 0/1 tensors combined arithmetically: on CPU this is several times faster than
# torch.where / boolean indexing, and it runs unchanged on CUDA.
def plan_pulses(dev: VTEAMDevice, weight_change, single: bool, s_pos: torch.Tensor, s_neg: torch.Tensor,
                sgn: torch.Tensor, rule: UpdateRule) -> tuple:
    """For the wanted weight-change sign ``sgn`` (+1 up, −1 down) and the device states the controller
    knows (``s = 0`` is R_on, 1 is R_off), return float masks and values ``(pos, gsign, s_c, g_c, step)``:
    ``pos`` = 1 where G⁺ (else G⁻) gets the pulses, ``gsign`` the chosen device's conductance direction
    (+1 SET, −1 RESET), its known state and conductance, and |ΔW| of one pulse there (nominal device).
    ``single``: only G⁺ is trained (a reference column). ``weight_change(d_pos, d_neg)``: the mapping."""
    if single:
        pos, gsign, s_c = torch.ones_like(sgn), sgn, s_pos
    else:
        if rule.pair_rule == "headroom":
            # W up: SET G+ (headroom s+) or RESET G- (1-s-); W down: RESET G+ (1-s+) or SET G- (s-)
            # -> choose G+ iff sgn·(s+ + s- − 1) >= 0
            pos = (sgn * (s_pos + s_neg - 1)).sign_().add_(1).clamp_(max=1)
        else:
            pos = sgn.clamp(min=0)
        gsign = sgn * (2 * pos - 1)
        s_c = s_neg + pos * (s_pos - s_neg)
    g_c = dev.conductance(s_c)
    step = weight_change(dev.conductance(dev.pulse_state(s_c, gsign)).sub_(g_c)).abs_()
    return pos, gsign, s_c, g_c, step


def ga_residual(rule: UpdateRule, acc: torch.Tensor, n: torch.Tensor, written: torch.Tensor | None) -> torch.Tensor:
    """The accumulator after a write of ``n`` pulses (counts ≥ 0): without GA zero; ``reset`` zero where
    fired; else ``acc − written`` (the weight change the controller credits the write with: its nominal
    prediction or, ``measured``, the change read back)."""
    if not rule.accumulate:
        return torch.zeros_like(acc)
    if rule.ga_residual == "reset":
        return acc * (1 - n.sign())
    return acc - written


# ============================================================================ the in-situ layer
class PulsedLinear(nn.Module):
    """One weight matrix ``(inputs[+1 bias row], outputs)`` on a crossbar of VTEAM devices, trained by pulses.

    ``crossbar`` is an ordinary :class:`~memristive.crossbar.Crossbar` (``memristor`` = the VTEAM device,
    ``mapping`` any mapping): its conductance buffers are the devices. ``cells`` holds the devices' D2D
    draws and P2P noise, laid out ``(trials, 2, rows, cols)`` (index 0 is G⁺, 1 is G⁻; with a reference
    column only G⁺ is trained). With an open-loop controller, ``model_pos``/``model_neg`` are the
    (normalised) states the controller believes the devices are in.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, mapping: Mapping, memristor: VTEAMDevice,
                 variability: Variability, trials: int, d2d_sigma, p2p_sigma, generator: torch.Generator,
                 v_read: float, endurance: Endurance | None = None, wear_generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.has_bias = in_features, out_features, bias
        rows = in_features + int(bias)
        self.memristor = memristor
        self.cells = VTEAMCells(memristor, trials, (2, rows, out_features), variability, d2d_sigma, p2p_sigma,
                                generator)
        self.crossbar = Crossbar.from_weights(torch.zeros(rows, out_features), memristor=memristor, mapping=mapping,
                                              trials=trials, v_read=v_read)
        self.single = self.crossbar.mapping.sides == ("pos",)  # a reference column: one trained device per weight
        self.dw0 = nominal_step(memristor, self.weight_change)
        zeros = torch.zeros(trials, rows, out_features)
        self.register_buffer("model_pos", zeros.clone())
        self.register_buffer("model_neg", zeros.clone())
        # GA accumulator and the running sum of the ideal updates (bookkeeping: with GA, update_sum =
        # W_known − W_init + accumulator at all times, i.e. no update is ever lost)
        self.register_buffer("accumulator", zeros.clone())
        self.register_buffer("update_sum", zeros.clone())
        # endurance: one Wear per trained side, on each device's own range [1/R_off, 1/R_on] (D2D included)
        self.wear_pos = self.wear_neg = None
        endurance = as_endurance(endurance)
        if endurance is not None:
            shape = (trials, rows, out_features)
            for i, side in enumerate(("pos",) if self.single else ("pos", "neg")):
                r_on, r_off = (r if r.dim() == 0 else r[:, i] for r in (self.cells.r_on, self.cells.r_off))
                setattr(self, f"wear_{side}", Wear(endurance, 1.0 / r_off, 1.0 / r_on, shape, wear_generator,
                                                   dtype=zeros.dtype))

    @property
    def trials(self) -> int:
        return self.crossbar.trials

    @property
    def k(self) -> float:
        return self.crossbar.k

    def weight_change(self, d_pos: torch.Tensor, d_neg: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Weight change of conductance changes ``d_pos`` on G⁺ and ``d_neg`` on G⁻ (the crossbar's mapping)."""
        return self.crossbar.mapping.to_weights(d_pos, d_neg, self.k)

    def weights(self) -> torch.Tensor:
        """Weights the array holds, ``(trials, rows, cols)``."""
        return self.crossbar.weights()

    def model_weights(self) -> torch.Tensor:
        """Weights the open-loop controller believes the array holds."""
        dev = self.memristor
        return self.crossbar.mapping.to_weights(dev.conductance(self.model_pos), dev.conductance(self.model_neg), self.k)

    @torch.no_grad()
    def program_weights(self, w: torch.Tensor) -> None:
        """Ideal initial programming of ``w`` (rows × cols) on every trial; the controller's model starts
        there. Targets a device cannot hold (its own D2D range included) are a ``ValueError``."""
        xb = self.crossbar
        xb.program(w.to(xb.g_pos.dtype))
        g_pos, g_neg = xb.conductances
        self.cells.check_range(torch.stack([g_pos, g_neg], dim=1))
        self.model_pos.copy_(self.memristor.state(g_pos))
        self.model_neg.copy_(self.memristor.state(g_neg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, in) or (T, B, in), entries of any scale: the DAC full scale is set to max|x|, so
        read voltages never exceed ``v_read``; the output is rescaled digitally."""
        if self.has_bias:
            x = torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)], dim=-1)
        scale = x.detach().abs().amax().clamp(min=1e-12)
        return self.crossbar.matmul(x / scale) * scale

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def plan(self, s_pos: torch.Tensor, s_neg: torch.Tensor, sgn: torch.Tensor, rule: UpdateRule) -> tuple:
        """:func:`plan_pulses` for this layer's devices and mapping."""
        return plan_pulses(self.memristor, self.weight_change, self.single, s_pos, s_neg, sgn, rule)

    @torch.no_grad()
    def apply_update(self, acc: torch.Tensor, rule: UpdateRule, epoch: int,
                     generator: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        """Turn the accumulator into pulses on the crossbar's devices; return ``(new accumulator, stats)``.

        Only one device of each pair is pulsed, so the work is done on pair-sized tensors.
        """
        xb, dev = self.crossbar, self.memristor
        read = rule.controller == "read"
        if read:  # every device read, its state estimated with the nominal model
            s_pos = dev.state(xb.g_pos)
            s_neg = s_pos if self.single else dev.state(xb.g_neg)
        else:
            s_pos, s_neg = self.model_pos, self.model_neg
        sgn = acc.sign()
        pos, gsign, s_c, g_c, step = self.plan(s_pos, s_neg, sgn, rule)
        theta = threshold_for(rule, acc, step, self.dw0, epoch)
        n = pulses_for_update(rule, acc, step, theta)
        n_signed = n * gsign
        # the devices: their own parameters and pulse-to-pulse noise (the controller's plan used neither)
        g_true = xb.g_pos if self.single else xb.g_neg + pos * (xb.g_pos - xb.g_neg)
        dg = self.cells.pulse(g_true, n_signed, generator, select=pos, change=True)
        if self.wear_pos is None:
            self._add(xb.g_pos, xb.g_neg, pos, dg)
        else:
            dg = self._worn_add(pos, dg, n)
        predicted = None
        if not read or (rule.accumulate and rule.ga_residual == "nominal"):
            s_new = dev.pulse_state(s_c, n_signed)
            predicted = dev.conductance(s_new).sub_(g_c)
            if not read:
                self._add(self.model_pos, self.model_neg, pos, s_new.sub_(s_c))
        n_set = n * gsign.clamp(min=0)
        n_reset = n - n_set
        total_set = float(n_set.sum())
        stats = {
            "set": total_set,
            "reset": float(n.sum()) - total_set,
            "energy": float(pulse_energy(n_set, n_reset, g_true, g_true + dg, self.memristor.write).sum()),
            # row-parallel programming: per row a SET phase and a RESET phase as long as its longest train
            "program_time": float((n_set.amax(dim=-1) + n_reset.amax(dim=-1)).sum(dim=-1).mean())
            * self.memristor.write.width,
            "fired": float(n.sign().mean()),
            "reads": 2 * acc.numel() if read else 0,
        }
        written = None
        if rule.accumulate and rule.ga_residual != "reset":
            written = self.weight_change(*self._split(pos, dg if rule.ga_residual == "measured" else predicted))
        return ga_residual(rule, acc, n, written), stats

    def _worn_add(self, pos: torch.Tensor, dg: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """:meth:`_add` through the devices' wear (each pulse charged to the pulsed device); returns the
        change the chosen device actually made."""
        xb = self.crossbar
        n_pos, n_neg = self._split(pos, n)
        before = xb.g_pos.clone(), xb.g_neg.clone()
        self._add(xb.g_pos, xb.g_neg, pos, dg)
        xb.g_pos.copy_(self.wear_pos.write(before[0], xb.g_pos, n_pos))
        if self.single:
            return xb.g_pos - before[0]
        xb.g_neg.copy_(self.wear_neg.write(before[1], xb.g_neg, n_neg))
        return (xb.g_pos - before[0]) + (xb.g_neg - before[1])  # one device of each pair moved

    def endurance_stats(self) -> dict | None:
        """Wear of this layer's trained devices (:func:`memristive.endurance.wear_stats`), None if off."""
        return wear_stats([self.wear_pos, self.wear_neg])

    def _split(self, pos: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """A change ``d`` of the chosen device as ``(change of G⁺, change of G⁻)``."""
        return split_pair(pos, d, self.single)

    def _add(self, g_pos: torch.Tensor, g_neg: torch.Tensor, pos: torch.Tensor, d: torch.Tensor) -> None:
        """Add the chosen device's change ``d`` to the pair buffers in place (the reference column stays)."""
        d_pos, d_neg = self._split(pos, d)
        g_pos.add_(d_pos)
        if not self.single:
            g_neg.add_(d_neg)


ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "abs": torch.abs}


@dataclass
class DTGAConfig:
    """An MLP trained in situ on VTEAM differential pairs (see the module docstring).

    ``device`` is a VTEAM preset name or parameters; its ``write`` pulse is the programming pulse.
    """

    sizes: list[int] = field(default_factory=lambda: [784, 100, 10])
    activation: Literal["sigmoid", "relu", "tanh", "abs"] = "sigmoid"
    bias: bool = True
    w_max: list[float] = field(default_factory=lambda: [1.0, 4.0])
    init_gain: float = 1.0
    lr: float = 2.0
    batch_size: int = 100
    device: str | VTEAMDevice = "dtga"
    mapping: Mapping = "balanced-state"  # type: ignore[assignment]
    variability: Variability = field(default_factory=lambda: Variability.noise_factor(0.0))
    update: UpdateRule = field(default_factory=UpdateRule)
    v_read: float = 0.01
    endurance: Endurance | None = None  # null: devices never wear; else every pulse is charged (module docstring)

    def __post_init__(self) -> None:
        self.endurance = as_endurance(self.endurance, "endurance")
        check(len(self.sizes) >= 2 and all(int(s) >= 1 for s in self.sizes), "sizes", self.sizes,
              "need at least two positive layer sizes")
        check(len(self.w_max) == len(self.sizes) - 1, "w_max", self.w_max,
              f"need one value per weight layer ({len(self.sizes) - 1})")
        for w in self.w_max:
            check(math.isfinite(w) and w > 0, "w_max", w, "each must be > 0")
        check(self.activation in ACTIVATIONS, "activation", self.activation, f"must be one of {sorted(ACTIVATIONS)}")
        check(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "must be > 0")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        check(self.init_gain >= 0, "init_gain", self.init_gain, "must be >= 0")
        self.device = as_vteam(self.device, "device")
        self.device.check_read_voltage(self.v_read, "v_read")
        self.mapping = mapping_from_spec(self.mapping, "mapping")
        check(self.mapping.w_max is None, "mapping.w_max", self.mapping.w_max,
              "must be null: the in-situ network sets each layer's weight range with w_max")

    def layer_mapping(self, i: int) -> Mapping:
        """The mapping of weight layer ``i`` (its ``w_max``)."""
        return dataclasses.replace(self.mapping, w_max=float(self.w_max[i]))


class InSituMLP(nn.Module):
    """``T`` Monte Carlo instances of an MLP whose weights live in VTEAM pairs, trained in situ.

    ``noise`` (the paper's noise factor, D2D = P2P) may be one value or one per trial, so a whole
    robustness sweep runs as one batched model.
    """

    def __init__(self, cfg: DTGAConfig, trials: int = 1, seed: int = 0, noise: float | list[float] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        self.seed = seed
        d2d = p2p = None
        if noise is not None:
            d2d = p2p = torch.as_tensor(noise, dtype=torch.float32)
            if d2d.dim() == 0:
                d2d = p2p = float(noise)
        # failure counts from their own stream: the same devices, weights and batches with endurance on or off
        wear_gen = torch.Generator().manual_seed(seed + 7727) if cfg.endurance is not None else None
        self.layers = nn.ModuleList(
            PulsedLinear(a, b, cfg.bias, cfg.layer_mapping(i), cfg.device, cfg.variability, trials, d2d, p2p, gen,
                         cfg.v_read, cfg.endurance, wear_gen)
            for i, (a, b) in enumerate(zip(cfg.sizes[:-1], cfg.sizes[1:])))
        # initial weights: Glorot-uniform, the same for every trial (trials differ by their devices)
        for layer in self.layers:
            rows = layer.in_features + int(layer.has_bias)
            bound = cfg.init_gain * math.sqrt(6.0 / (layer.in_features + layer.out_features))
            w = (torch.rand(rows, layer.out_features, generator=gen) * 2 - 1) * bound
            if layer.has_bias:
                w[-1] = 0
            try:
                layer.program_weights(w)
            except ValueError as exc:
                raise ConfigError(f"init_gain={cfg.init_gain}: initial weights up to {bound:.3g} do not fit around "
                                  f"the devices' mid state; raise w_max ({exc})") from None
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
        """Logits ``(T, B, classes)``, through the crossbars."""
        act = ACTIVATIONS[self.cfg.activation]
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = act(h)
        return h

    def weights(self) -> list[torch.Tensor]:
        return [layer.weights() for layer in self.layers]

    def endurance_stats(self) -> dict | None:
        """Wear of all trained devices (:func:`memristive.endurance.wear_stats`); None without endurance."""
        return wear_stats([w for layer in self.layers for w in (layer.wear_pos, layer.wear_neg)])

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-trial mean softmax cross-entropy ``(T,)``."""
        logp = torch.log_softmax(self(x), dim=-1)
        return -logp.gather(-1, y.expand(logp.shape[0], -1).unsqueeze(-1)).mean(dim=(1, 2))

    def weight_gradients(self, x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``scale·∂L/∂W`` per layer ``(T, rows, cols)`` (each trial's own loss) by autograd through the
        crossbars, and the per-trial loss. The crossbars read ``W = (G⁺ − G⁻)/k``, so the gradient with
        respect to ``G⁺`` is ``∂L/∂W / k``."""
        leaves = [layer.crossbar.g_pos for layer in self.layers]
        for g in leaves:
            g.requires_grad_(True)
        try:
            with torch.enable_grad():
                loss = self.loss(x, y)
                grads = torch.autograd.grad(loss.sum(), leaves)
        finally:
            for g in leaves:
                g.requires_grad_(False)
        return [g.mul_(scale * layer.k) for g, layer in zip(grads, self.layers)], loss.detach()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """One mini-batch: forward through the crossbars, autograd, pulse update. Returns stats."""
        updates, loss = self.weight_gradients(x, y, scale=-self.cfg.lr)  # U = −lr·∂L/∂W
        rule = self.cfg.update
        stats = {"set": 0.0, "reset": 0.0, "energy": 0.0, "program_time": 0.0, "fired": 0.0, "reads": 0.0}
        with torch.no_grad():
            for layer, upd in zip(self.layers, updates):
                layer.update_sum += upd
                acc = layer.accumulator + upd if rule.accumulate else upd
                acc, st = layer.apply_update(acc, rule, int(self.epochs_done), self._pulse_generator(acc.device))
                layer.accumulator.copy_(acc)
                for k in stats:
                    stats[k] += st[k] / (len(self.layers) if k == "fired" else 1)
        stats["loss"] = loss
        return stats

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: bool = True,
                    desc: str = "in-situ epoch") -> dict:
        """One pass over ``(x, y)`` in shuffled mini-batches. Returns pulses, reads, energy, times, mean loss."""
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=generator)
        bs = self.cfg.batch_size
        tot = {"set": 0.0, "reset": 0.0, "energy": 0.0, "program_time": 0.0, "reads": 0.0}
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
        out = {**tot, "pulses": tot["set"] + tot["reset"], "loss": (loss_sum / len(x)).cpu().tolist(),
               "fired_fraction": fired / max(1, len(steps)), "wall_s": time.perf_counter() - t0}
        wear = self.endurance_stats()
        if wear is not None:
            out["endurance"] = wear
        return out

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """Per-trial accuracy ``(T,)``."""
        correct = torch.zeros(self.trials, device=self.epochs_done.device)
        for i in range(0, len(x), batch_size):
            h = self(x[i : i + batch_size].to(self.epochs_done.device))
            correct += (h.argmax(-1) == y[i : i + batch_size].to(h.device)).sum(-1).float()
        return (correct / len(x)).cpu()


def train_insitu(model: InSituMLP, x_train, y_train, x_test, y_test, epochs: int, seed: int = 0,
                 progress: bool = True, desc: str = "in-situ", on_epoch=None, x_val=None, y_val=None) -> list[dict]:
    """Train ``epochs`` epochs; after each, record per-trial test accuracy (and validation accuracy when
    ``x_val`` is given), pulses, reads, energy and times."""
    gen = torch.Generator().manual_seed(seed)
    history = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for e in bar:
        st = model.train_epoch(x_train, y_train, gen, progress=progress, desc=f"{desc} epoch {e + 1}")
        acc = model.accuracy(x_test, y_test)
        row = {"epoch": e + 1, "accuracy": acc.tolist(), "accuracy_mean": float(acc.mean()), **st}
        if x_val is not None:
            val = model.accuracy(x_val, y_val)
            row.update(val_accuracy=val.tolist(), val_accuracy_mean=float(val.mean()))
        history.append(row)
        bar.set_postfix(acc=f"{100 * float(acc.mean()):.2f}%")
        if on_epoch is not None:
            on_epoch(row)
    return history
