"""Analog in-situ training, part 2: ``torch.optim``-style optimizers on converted models.

Usage (any model whose analog layers follow the protocol of :mod:`.analog`)::

    model = convert(mlp([784, 256, 10], "relu"), CrossbarConfig(device=pulsed_preset("gokmen-vlasov"), ...))
    opt = AnalogSGD(model, lr=0.1, scheme="stochastic")
    for x, y in loader:
        opt.zero_grad()
        loss = trial_loss(model(x), y)      # summed over Monte Carlo trials: each trial is its own network
        loss.backward()                     # δ reaches every layer through autograd of the crossbar forward
        opt.step()                          # updates written as pulses via the device's pulse()

The optimizers are :class:`torch.optim.Optimizer` subclasses: each analog layer is one parameter
group (its ``G+`` buffer stands for the layer), so ``lr`` schedulers and ``state_dict`` work. Digital
``nn.Parameter``\\ s (if any) need their own torch optimizer.

* :class:`AnalogSGD` — every mini-batch's update goes straight to the array as pulses (any scheme).
* :class:`MixedPrecision` — Nandakumar et al., Front. Neurosci. 12:279 (2018): the update is added to
  a digital accumulator χ (units of one pulse); n = trunc(χ) pulses are written where |χ| ≥
  ``threshold`` and χ ← χ − n (what was written is subtracted; the remainder stays).
* :class:`TikiTaka` — Gokmen & Haensch, Front. Neurosci. 14:103 (2020): the gradient goes to a fast
  array A (same pair layout, initialised at each device's symmetry point, or at ``g_mid`` for a device
  without one, e.g. VTEAM); every ``transfer_every``
  mini-batches ``n_rows_per_transfer`` rows of A (cyclically; all rows if the layer has fewer) are read and added to the visible
  array C (the model's crossbar) as ``ΔC = transfer_lr·A_row`` through ``transfer_scheme``. The
  forward pass reads C only (aihwkit's γ = 0). ``buffered=True`` is Tiki-Taka v2 (Gokmen,
  Front. Artif. Intell. 4:699148, 2021): the read rows go into a digital buffer H (units of one C
  pulse), trunc(H) pulses are written where |H| ≥ ``buffer_threshold``, and H is zeroed there
  (``forget_buffer``) or keeps its remainder.
* :class:`DTGA` — dynamic threshold + gradient accumulation (Shen et al., Appl. Intell. 55:167, 2025;
  :mod:`.dtga`, docs/dtga.md) on VTEAM pairs: A ← A − lr·∂L/∂W (GA; without GA A is this batch's
  update), θ per :class:`~memristive.methods.dtga.UpdateRule`, n = clamp(round(|A|/Δw₁), 1, max_pulses)
  where |A| ≥ θ on one device of each pair (``pair_rule``), residual per ``ga_residual``. The formulas
  are those of the DTGA trainer (:func:`~memristive.methods.dtga.plan_pulses`,
  :func:`~memristive.methods.dtga.threshold_for`, :func:`~memristive.methods.dtga.pulses_for_update`,
  :func:`~memristive.methods.dtga.ga_residual`), here on any converted model.

Every optimizer takes ``endurance`` (an :class:`memristive.endurance.Endurance`, a mapping of its
fields, or ``None`` = off, the default): each device's pulses are charged to it (Tiki-Taka: the fast
array's devices too), written devices land inside their worn window and failed ones stick;
:meth:`AnalogOptimizer.totals` reports the wear.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from ..config import ConfigError, check
from ..devices.vteam import VTEAMDevice
from ..endurance import as_endurance, wear_stats
from .analog import (
    DeterministicPulses,
    PairWriter,
    Tap,
    UpdateScheme,
    analog_layers,
    grad_matrix,
    memristor_of,
    update_scheme,
)
from .dtga import UpdateRule, ga_residual, nominal_step, plan_pulses, pulses_for_update, split_pair, threshold_for


def trial_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, mean over the batch, *summed* over trials: ``logits`` (T, B, C), ``y`` (B,)."""
    if logits.dim() == 2:
        logits = logits.unsqueeze(0)
    T, B, C = logits.shape
    return nn.functional.cross_entropy(logits.reshape(T * B, C), y.repeat(T), reduction="sum") / B


class AnalogOptimizer(torch.optim.Optimizer):
    """Base class: finds the analog layers, records (x, δ), owns the pulse writers and totals."""

    def __init__(self, model: nn.Module, lr: float, seed: int = 0, pair: str = "both", endurance=None,
                 **defaults) -> None:
        check(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0, "lr", lr, "must be a positive number")
        self.endurance = as_endurance(endurance)
        check(pair in ("both", "pos"), "pair", pair, "must be 'both' or 'pos'")
        layers = analog_layers(model)
        if not layers:
            raise ConfigError(f"{type(self).__name__}: the model has no analog layers (modules with a 'crossbar'); "
                              "convert it first (memristive.nn.convert)")
        for name, m in layers:  # the recorded δ is the gradient of the layer output, i.e. of the array
            # weights only when the output is the array's read: quantized layers multiply it by scales
            bits = getattr(m, "bits", None)
            if bits is not None:
                raise ConfigError(f"{type(self).__name__}: layer {name!r} is quantized (bits={bits}: its array holds "
                                  "integer codes times per-column scales); analog optimizers train unquantized "
                                  "converted layers: convert without bits")
        groups = [{"params": [m.crossbar.g_pos], "name": name} for name, m in layers]
        super().__init__(groups, dict(lr=float(lr), **defaults))
        self.layers = {name: m for name, m in layers}
        self.pair = pair
        self.seed = int(seed)
        self.tap = Tap(layers)
        self.writers: dict[str, PairWriter] = {}
        self._gen: torch.Generator | None = None
        self.update_seconds = 0.0

    # ------------------------------------------------------------------ helpers
    def generator(self, device) -> torch.Generator:
        if self._gen is None or self._gen.device != torch.device(device):
            self._gen = torch.Generator(device=device).manual_seed(self.seed)
        return self._gen

    def writer(self, name: str) -> PairWriter:
        """The pulse writer of layer ``name`` (created on first use: draws the device parameters)."""
        w = self.writers.get(name)
        if w is None:
            xb = self.layers[name].crossbar
            gen = torch.Generator(device=xb.g_pos.device).manual_seed(self.seed * 7919 + 1 + len(self.writers))
            w = PairWriter(memristor_of(xb), xb.g_pos, xb.g_neg, xb.k, self.pair, gen,
                           getattr(xb, "stuck_pos", None), getattr(xb, "stuck_neg", None), self.endurance,
                           self._wear_generator(len(self.writers)))
            self.writers[name] = w
        return w

    def _wear_generator(self, i: int) -> torch.Generator | None:
        """A CPU generator for the failure counts of writer ``i`` (its own stream: the pulses are unchanged)."""
        return torch.Generator().manual_seed(self.seed * 7919 + 7727 + i) if self.endurance is not None else None

    def _all_writers(self) -> list:
        return list(self.writers.values())

    def totals(self) -> dict:
        """Pulses and programming energy (J) written so far, summed over layers and trials
        (``energy`` is None if a device has no energy model); with endurance, ``endurance`` holds the
        wear of every written device (:func:`memristive.endurance.wear_stats`)."""
        ws = self._all_writers()
        out = {"pulses": sum(w.pulses for w in ws),
               "energy": sum(w.energy for w in ws) if all(w.has_energy for w in ws) else None}
        if self.endurance is not None:
            out["endurance"] = wear_stats([x for w in ws for x in (w.wear_pos, w.wear_neg)])
        return out

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.tap.clear()
        super().zero_grad(set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        t0 = time.perf_counter()
        for group in self.param_groups:
            name = group["name"]
            layer = self.layers[name]
            if group["params"][0] is not layer.crossbar.g_pos:
                raise RuntimeError(f"layer {name!r} was reprogrammed (its conductance buffer was replaced); "
                                   "create a new optimizer after reprogramming")
            rec = self.tap.pop(layer)
            if rec is None:
                continue
            x, d = rec
            self._update(name, group, x, d)
        for p in self.tap.probes.values():
            p.grad = None
        self.update_seconds += time.perf_counter() - t0
        return loss

    def _update(self, name: str, group: dict, x: torch.Tensor, d: torch.Tensor) -> None:
        raise NotImplementedError

    def _extra_state(self) -> dict:
        return {"writers": {n: w.state_dict() for n, w in self.writers.items()}}

    def _load_extra_state(self, extra: dict) -> None:
        for name, st in extra["writers"].items():
            self.writer(name).load_state_dict(st)

    def state_dict(self) -> dict:
        """torch's optimizer state plus the analog state: each layer's device parameters (drawn once),
        pulse/energy totals, fast arrays (Tiki-Taka) and the pulse generator's state."""
        sd = super().state_dict()
        sd["analog"] = {**self._extra_state(), "generator": self._gen.get_state() if self._gen is not None else None,
                        "generator_device": str(self._gen.device) if self._gen is not None else None}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("analog", None)
        super().load_state_dict(state_dict)
        for st in self.state.values():  # torch keeps the given tensors; updates are in place: own copies
            for key, val in st.items():
                if isinstance(val, torch.Tensor):
                    st[key] = val.clone()
        if extra is not None:
            self._load_extra_state(extra)
            if extra.get("generator") is not None:
                self.generator(extra["generator_device"]).set_state(extra["generator"])

    def close(self) -> None:
        """Remove the forward hooks from the model."""
        self.tap.remove()


class AnalogSGD(AnalogOptimizer):
    """Plain analog SGD: each mini-batch's update is written as pulses through ``scheme``."""

    def __init__(self, model: nn.Module, lr: float = 0.1, scheme: str | dict | UpdateScheme = "stochastic",
                 seed: int = 0, pair: str = "both", endurance=None) -> None:
        super().__init__(model, lr, seed, pair, endurance)
        self.scheme = update_scheme(scheme)

    def _update(self, name, group, x, d):
        w = self.writer(name)
        gen = self.generator(d.device)
        n_up, n_down = self.scheme.counts(x, d, group["lr"], w.dw, gen)
        w.write(n_up, n_down, gen)


class MixedPrecision(AnalogOptimizer):
    """Digital accumulation, transfer by pulses past a threshold (Nandakumar et al. 2018)."""

    def __init__(self, model: nn.Module, lr: float = 0.1, threshold: float = 1.0, max_pulses: int | None = None,
                 seed: int = 0, pair: str = "both", endurance=None) -> None:
        check(math.isfinite(threshold) and threshold >= 1, "threshold", threshold,
              "must be >= 1 (units of one pulse: fewer than one pulse cannot be written)")
        check(max_pulses is None or (isinstance(max_pulses, int) and max_pulses >= 1), "max_pulses", max_pulses,
              "must be an integer >= 1 or null")
        super().__init__(model, lr, seed, pair, endurance)
        self.threshold = float(threshold)
        self.max_pulses = max_pulses

    def transfer(self, chi: torch.Tensor) -> torch.Tensor:
        """Signed pulse counts for accumulator ``chi`` (units of one pulse): trunc(χ) where |χ| ≥ threshold."""
        n = chi.trunc() * (chi.abs() >= self.threshold)
        if self.max_pulses is not None:
            n = n.clamp(-self.max_pulses, self.max_pulses)
        return n

    def _update(self, name, group, x, d):
        w = self.writer(name)
        state = self.state[group["params"][0]]
        grad = grad_matrix(x, d)
        chi = state.get("chi")
        if chi is None:
            chi = state["chi"] = torch.zeros_like(grad)
        chi.add_(grad, alpha=-group["lr"] / w.dw)
        n = self.transfer(chi)
        chi.sub_(n)
        w.write(n.clamp(min=0), (-n).clamp(min=0), self.generator(d.device))


class TikiTaka(AnalogOptimizer):
    """Tiki-Taka (v1) and, with ``buffered=True``, Tiki-Taka v2 (see the module docstring)."""

    def __init__(self, model: nn.Module, lr: float = 0.1, transfer_lr: float = 1.0, transfer_every: int = 1,
                 n_rows_per_transfer: int = 1, scheme: str | dict | UpdateScheme = "stochastic",
                 transfer_scheme: str | dict | UpdateScheme | None = None, fast_device=None,
                 buffered: bool = False, buffer_threshold: float = 1.0, forget_buffer: bool = True,
                 seed: int = 0, pair: str = "both", endurance=None) -> None:
        check(math.isfinite(transfer_lr) and transfer_lr > 0, "transfer_lr", transfer_lr, "must be > 0")
        check(isinstance(transfer_every, int) and transfer_every >= 1, "transfer_every", transfer_every, "must be an integer >= 1")
        check(isinstance(n_rows_per_transfer, int) and n_rows_per_transfer >= 1, "n_rows_per_transfer",
              n_rows_per_transfer, "must be an integer >= 1")
        check(math.isfinite(buffer_threshold) and buffer_threshold >= 1, "buffer_threshold", buffer_threshold,
              "must be >= 1 (units of one pulse)")
        super().__init__(model, lr, seed, pair, endurance, transfer_lr=float(transfer_lr))
        self.scheme = update_scheme(scheme)
        self.transfer_scheme = update_scheme(transfer_scheme if transfer_scheme is not None else DeterministicPulses())
        self.transfer_every = transfer_every
        self.n_rows = n_rows_per_transfer
        self.fast_device = fast_device
        self.buffered = bool(buffered)
        self.buffer_threshold = float(buffer_threshold)
        self.forget_buffer = bool(forget_buffer)
        self.fast: dict[str, PairWriter] = {}

    def fast_writer(self, name: str) -> PairWriter:
        """The fast array A of layer ``name``: a pair per weight, every device at its symmetry point."""
        w = self.fast.get(name)
        if w is None:
            xb = self.layers[name].crossbar
            dev = self.fast_device if self.fast_device is not None else memristor_of(xb)
            slow = memristor_of(xb)
            k = xb.k * (dev.g_max - dev.g_min) / (slow.g_max - slow.g_min)
            g_pos = torch.empty_like(xb.g_pos)
            g_neg = torch.empty_like(xb.g_pos)  # A is always a full pair, even for a reference-mapped C
            gen = torch.Generator(device=g_pos.device).manual_seed(self.seed * 7919 + 101 + len(self.fast))
            w = PairWriter(dev, g_pos, g_neg, k, "both", gen, endurance=self.endurance,
                           wear_generator=self._wear_generator(1000 + len(self.fast)))
            for g, params in ((g_pos, w.params_pos), (g_neg, w.params_neg)):
                sp = getattr(dev, "symmetry_point", None)
                if sp is None:  # no symmetry point (VTEAM): its mid state, where the step dw was measured
                    g.fill_(dev.g_mid)
                else:
                    g.copy_(dev.g_min + torch.as_tensor(sp(params), dtype=g.dtype, device=g.device) * (dev.g_max - dev.g_min))
            self.fast[name] = w
        return w

    def _extra_state(self) -> dict:
        out = super()._extra_state()
        out["fast"] = {n: {**w.state_dict(), "g_pos": w.g_pos, "g_neg": w.g_neg} for n, w in self.fast.items()}
        return out

    def _load_extra_state(self, extra: dict) -> None:
        super()._load_extra_state(extra)
        for name, st in extra.get("fast", {}).items():
            w = self.fast_writer(name)
            w.load_state_dict(st)
            w.g_pos.copy_(st["g_pos"])
            w.g_neg.copy_(st["g_neg"])

    def fast_weights(self, name: str) -> torch.Tensor:
        w = self.fast_writer(name)
        return (w.g_pos - w.g_neg) / w.k

    def _all_writers(self) -> list:
        return list(self.writers.values()) + list(self.fast.values())

    def _update(self, name, group, x, d):
        gen = self.generator(d.device)
        fast = self.fast_writer(name)
        slow = self.writer(name)
        n_up, n_down = self.scheme.counts(x, d, group["lr"], fast.dw, gen)
        fast.write(n_up, n_down, gen)
        state = self.state[group["params"][0]]
        state["updates"] = state.get("updates", 0) + 1
        if state["updates"] % self.transfer_every:
            return
        rows_total = fast.g_pos.shape[-2]
        start = state.get("row", 0)
        n_rows = min(self.n_rows, rows_total)  # each row read at most once per transfer (small layers: all)
        rows = (torch.arange(n_rows, device=d.device) + start) % rows_total
        state["row"] = (start + n_rows) % rows_total
        v = (fast.g_pos.index_select(-2, rows) - fast.g_neg.index_select(-2, rows)) / fast.k  # read A's rows (T, r, cols)
        lr_t = group["transfer_lr"]
        if self.buffered:
            h = state.get("buffer")
            if h is None:
                h = state["buffer"] = torch.zeros_like(fast.g_pos)
            hr = h.index_select(-2, rows) + lr_t * v / slow.dw
            n = hr.trunc() * (hr.abs() >= self.buffer_threshold)
            hr = torch.where(n != 0, torch.zeros_like(hr), hr) if self.forget_buffer else hr - n
            h.index_copy_(-2, rows, hr)
            slow.write(n.clamp(min=0), (-n).clamp(min=0), gen, rows=rows)
            return
        # ΔC_rows = lr_t·v, as the outer product of one-hot row inputs and −v (the schemes write −lr·xδᵀ)
        eye = torch.eye(len(rows), dtype=v.dtype, device=v.device).unsqueeze(0)
        n_up, n_down = self.transfer_scheme.counts(eye, -v, lr_t, slow.dw, gen)
        slow.write(n_up, n_down, gen, rows=rows)


class DTGA(AnalogOptimizer):
    """DTGA on any converted model whose arrays are VTEAM pairs (see the module docstring).

    ``update`` is a :class:`~memristive.methods.dtga.UpdateRule` (or a mapping of its fields): every
    option of the DTGA trainer is expressed exactly — ``controller="open_loop"`` keeps the controller's
    nominal model of every device's state in the optimizer state (starting from the array's conductances
    at the first step), ``"read"`` reads every device before each update (counted in ``totals()["reads"]``);
    ``pair_rule`` chooses the pulsed device of each pair and :meth:`PairWriter.write_devices` writes it;
    Δw₁ is the nominal device's one-pulse step at the chosen device's known state. ``pair="pos"`` (or a
    reference column) trains G+ only. The ``decay`` rule reads :attr:`epoch` (set it, or call
    :meth:`new_epoch` after each epoch). Device-to-device and pulse-to-pulse variation of VTEAM devices
    are not modelled by the writer (the nominal device), unlike the trainer's ``VTEAMCells``.
    """

    def __init__(self, model: nn.Module, lr: float = 2.0, update: UpdateRule | dict | None = None, seed: int = 0,
                 pair: str = "both", endurance=None) -> None:
        if update is None:
            update = UpdateRule()
        elif isinstance(update, dict):
            try:
                update = UpdateRule(**update)
            except TypeError as exc:
                raise ConfigError(f"update: {exc}") from None
        if not isinstance(update, UpdateRule):
            raise ConfigError(f"update={update!r}: expected an UpdateRule or a mapping of its fields")
        super().__init__(model, lr, seed, pair, endurance)
        for name, layer in self.layers.items():
            dev = memristor_of(layer.crossbar)
            if not isinstance(dev, VTEAMDevice):
                self.close()
                raise ConfigError(f"DTGA: layer {name!r} has memristor {getattr(dev, 'kind', type(dev).__name__)!r}; "
                                  "DTGA plans pulses with the VTEAM state model (state, pulse_state): use a VTEAM "
                                  "device (e.g. preset 'dtga')")
        self.rule = update
        self.epoch = 0
        self.counts = {"set": 0.0, "reset": 0.0, "reads": 0.0, "fired": 0.0, "updates": 0}

    def new_epoch(self) -> None:
        """Count one finished epoch (the ``decay`` threshold rule uses :attr:`epoch`)."""
        self.epoch += 1

    def totals(self) -> dict:
        """:meth:`AnalogOptimizer.totals` plus SET/RESET pulse counts, device reads (``controller="read"``)
        and the mean fraction of weights fired per layer update."""
        out = super().totals()
        c = self.counts
        out.update(set=c["set"], reset=c["reset"], reads=c["reads"],
                   fired_fraction=c["fired"] / c["updates"] if c["updates"] else 0.0)
        return out

    def _extra_state(self) -> dict:
        return {**super()._extra_state(), "epoch": self.epoch, "counts": dict(self.counts)}

    def _load_extra_state(self, extra: dict) -> None:
        super()._load_extra_state(extra)
        self.epoch = int(extra.get("epoch", 0))
        self.counts.update(extra.get("counts", {}))

    def _update(self, name, group, x, d):
        w = self.writer(name)
        xb = self.layers[name].crossbar
        dev, rule = w.dev, self.rule
        single = w.pair == "pos"
        mapping, k = xb.mapping, w.k

        def weight_change(d_pos, d_neg=0.0):
            return mapping.to_weights(d_pos, d_neg, k)

        state = self.state[group["params"][0]]
        upd = grad_matrix(x, d).mul_(-group["lr"])  # U = −lr·∂L/∂W
        if rule.accumulate:
            acc = state.get("accumulator")
            acc = upd if acc is None else acc.add_(upd)
        else:
            acc = upd
        read = rule.controller == "read"
        if read:  # every device read, its state estimated with the nominal model
            s_pos = dev.state(w.g_pos)
            s_neg = s_pos if single else dev.state(w.g_neg)
            self.counts["reads"] += 2 * acc.numel()
        else:  # the open-loop controller's model, from the array as first seen (the programmed targets)
            if "model_pos" not in state:
                state["model_pos"] = dev.state(w.g_pos)
                state["model_neg"] = state["model_pos"].clone() if single else dev.state(w.g_neg)
            s_pos, s_neg = state["model_pos"], state["model_neg"]
        if "dw0" not in state:
            state["dw0"] = nominal_step(dev, weight_change)
        pos, gsign, s_c, g_c, step = plan_pulses(dev, weight_change, single, s_pos, s_neg, acc.sign(), rule)
        theta = threshold_for(rule, acc, step, state["dw0"], self.epoch)
        n = pulses_for_update(rule, acc, step, theta)
        n_signed = n * gsign
        measured = rule.accumulate and rule.ga_residual == "measured"
        before = (w.g_pos.clone(), w.g_neg.clone()) if measured else None
        n_pos, n_neg = split_pair(pos, n_signed, single)
        w.write_devices(n_pos, None if single else n_neg, self.generator(d.device))
        predicted = None
        if not read or (rule.accumulate and rule.ga_residual == "nominal"):
            s_new = dev.pulse_state(s_c, n_signed)
            predicted = dev.conductance(s_new).sub_(g_c)
            if not read:
                m_pos, m_neg = split_pair(pos, s_new.sub_(s_c), single)
                s_pos.add_(m_pos)
                if not single:
                    s_neg.add_(m_neg)
        written = None
        if measured:
            written = weight_change(w.g_pos - before[0], 0.0 if single else w.g_neg - before[1])
        elif rule.accumulate and rule.ga_residual == "nominal":
            written = weight_change(*split_pair(pos, predicted, single))
        if rule.accumulate:
            state["accumulator"] = ga_residual(rule, acc, n, written)
        n_set = float((n * gsign.clamp(min=0)).sum())
        self.counts["set"] += n_set
        self.counts["reset"] += float(n.sum()) - n_set
        self.counts["fired"] += float(n.sign().mean())
        self.counts["updates"] += 1
