"""memristive beside IBM aihwkit and Sandia CrossSim, in one process, on the same workloads and physics.

    make anchors                                   # once: builds .venv-anchors (aihwkit 1.2.0 + CrossSim 3.2)
    .venv-anchors/bin/python benchmarks/anchors/compare.py [--threads 1 2] [--repeats 3] [--out runs/anchors]

784x256x10 MLP (ReLU), 10,000 MNIST test images (random inputs if MNIST is absent), batch 100. Every
time is a median over ``--repeats`` rounds; inside a round the tools run one after another, and each
ratio is taken against the digital torch pass of the *same round* (the machine is shared: a round is
the unit that sees one load). Results: ``results.json``, ``results.csv`` and ``table.md`` in the run
folder, and the table on stdout.

Matched physics (one weight matrix per layer, the same inputs; G_min/G_max of memristive's
``ti-alox-taox`` preset, 83.3-1000 uS, offset differential pairs G± = G_min + k·max(±W, 0),
k = (G_max − G_min)/max|W| per layer; bias added digitally; inputs not quantized; one array per
layer, no tiling):

* programming variation: additive Gaussian, std ``--prog`` × (G_max − G_min) per device
  (memristive ``Fluctuation``; CrossSim ``NormalIndependentDevice`` with magnitude scaled from its
  G_max units; aihwkit ``StateIndependentNoiseModel(prog_coeff=[σ·ΔG µS, 0, 0])``). aihwkit clamps
  programmed conductances at 0 S and the others do not: with σ = 5 % of 917 µS a device at
  G_min = 83 µS falls below 0 with probability ≈ 3.5 %, a small physics difference (no effect on speed);
* ADC: 8-bit signed, 255 levels over ±R (step R/127), saturating; R per layer is the largest
  |x·W| of the ideal layer (no bias) over the first 500 inputs, converted to each tool's units
  (volts for memristive, normalized outputs for aihwkit ``out_res=1/254, out_bound``, CrossSim
  ``SignMagnitudeADC`` with a CALIBRATED range). aihwkit's noise and bound management are off so
  its ADC range is static like the others;
* read noise, additive: per device per read std ``--read`` × (G_max − G_min) (memristive
  ``ReadNoise(mode="range")``; CrossSim ``NormalIndependentDevice`` read noise; aihwkit C++ tile
  ``w_noise_type=ADDITIVE_CONSTANT, w_noise = √2·σ`` in its normalized weight units — the two devices
  of a pair add their variances). aihwkit's pure-torch tile cannot express read noise
  (``forward.w_noise not supported in torch tile``): its row runs without it;
* read noise, relative: std ``--read`` × G per device per read (memristive ``mode="relative"``;
  CrossSim ``NormalProportionalDevice``). aihwkit has no such weight-noise type; no aihwkit row.
  CrossSim draws read noise (either kind) as a fresh conductance matrix per input vector, so its
  read-noise rows time ``--slow-inputs`` inputs and scale the time to all inputs (marked in the
  note); a CrossSim row without read noise (programming error + ADC only) runs on all inputs;
* N instances (``--instances``, default 100): memristive programs them as one batched Monte Carlo
  crossbar and runs one pass (the programming time is given in the note); the anchors loop:
  re-program (a fresh programming-noise draw), then a full pass, for ``--loop`` instances, scaled to
  N (marked in the note). CrossSim loops without read noise (with it, one instance already takes
  thousands of digital passes);
* training: one epoch of 10,000 MNIST training images, batch 100, lr 0.1, cross-entropy, a bias-free
  784x256x10 ReLU MLP. aihwkit ``AnalogSGD`` on ``SingleRPUConfig(device=ConstantStepDevice())`` (its
  C++ pulsed update) beside memristive's ``AnalogSGD`` with the same device parameters (preset
  ``aihwkit-constant-step``, stochastic pulse trains, one device pulsed per weight: the settings of
  ``benchmarks/bench_analog.py``), and memristive's pulse-level DTGA trainer on VTEAM pairs
  (``InSituMLP``, other device physics); ratios against a digital ``torch.optim.SGD`` epoch.

Physics check (skip with ``--no-check``): with programming and read noise off, the three tools'
outputs for the same inputs must agree to within one ADC step on nearly all outputs; the script
prints the fraction of outputs within one step of memristive's.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import memristive
from memristive.crossbar import Converter, CrossbarConfig
from memristive.devices import preset
from memristive.nn import convert
from memristive.nonideal import Fluctuation, ReadNoise

USE = {"aihwkit": True, "crosssim": True}  # tools in this run (--without)
BITS = 8
QMAX = 2 ** (BITS - 1) - 1  # 127: signed converter, 255 levels


# ---------------------------------------------------------------------------------------------- setup
@dataclass
class Physics:
    prog: float  # programming variation std / (G_max - G_min)
    read: float  # read-noise std / (G_max - G_min) (additive) or / G (relative)
    g_min: float
    g_max: float

    @property
    def g_range(self) -> float:
        return self.g_max - self.g_min


def load_data(n_test: int, n_train: int):
    try:
        from memristive.data import load_mnist

        d = load_mnist()
        return d.x_test[:n_test].float(), d.x_train[:n_train].float(), d.y_train[:n_train].long(), d.source
    except Exception as e:  # data absent (no network, no cache): random inputs with the same shape
        g = torch.Generator().manual_seed(0)
        print(f"[compare] MNIST unavailable ({type(e).__name__}: {e}); using random inputs")
        return (torch.rand(n_test, 784, generator=g), torch.rand(n_train, 784, generator=g),
                torch.randint(0, 10, (n_train,), generator=g), "random")


def make_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).eval()


def adc_full_scales(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """Per linear layer: max |x·W| of the ideal layer (no bias) over calibration inputs ``x``."""
    out, h = [], x
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                out.append(float((h @ layer.weight.t()).abs().max()))
            h = layer(h)
    return out


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


# ---------------------------------------------------------------------------------------------- memristive
def build_memristive(model, ph: Physics, full_scales, read_mode: str | None, trials: int = 1, seed: int = 1,
                     adc: bool = True, prog: bool = True):
    cfg = CrossbarConfig(
        memristor="ti-alox-taox",
        nonidealities=[Fluctuation(sigma=ph.prog)] if (prog and ph.prog > 0) else [],
        read_noise=ReadNoise(sigma=ph.read, mode=read_mode) if read_mode else None,
        adc=Converter(bits=BITS) if adc else Converter(),
    )
    hw = convert(model, cfg, trials=trials, seed=seed)
    layers = [m for m in hw if hasattr(m, "crossbar")]
    for layer, r_w in zip(layers, full_scales):
        xb = layer.crossbar
        if adc:  # each layer its own static full scale (the layers share one config object)
            xb.set_adc_range(r_w * cfg.v_read * cfg.r_s * xb.k)  # weight units -> column output voltage
    return hw.eval()


# ---------------------------------------------------------------------------------------------- aihwkit
def build_aihwkit(model, ph: Physics, full_scales, tile: str, read_noise: bool, prog: bool = True):
    from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
    from aihwkit.inference.noise.custom import StateIndependentNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import InferenceRPUConfig, TorchInferenceRPUConfig
    from aihwkit.simulator.parameters.enums import (BoundManagementType, NoiseManagementType,
                                                    WeightNoiseType)

    w_max = [float(m.weight.detach().abs().max()) for m in linears(model)]
    analog = copy.deepcopy(model)
    layers_out = []
    for idx, (lin, r_w, wm) in enumerate(zip(linears(model), full_scales, w_max)):
        rpu = (TorchInferenceRPUConfig if tile == "torch" else InferenceRPUConfig)()
        f = rpu.forward
        f.inp_res = -1          # inputs not quantized (ideal DAC, as in the other tools)
        f.inp_bound = 1e6       # no input clipping
        f.inp_noise = 0.0
        f.out_noise = 0.0
        f.out_res = 1.0 / (2 * QMAX)      # 255 levels over ±out_bound
        f.out_bound = r_w / wm            # weights are normalized to max|W| = 1 (omega = 1)
        f.noise_management = NoiseManagementType.NONE
        f.bound_management = BoundManagementType.NONE
        if read_noise:
            f.w_noise_type = WeightNoiseType.ADDITIVE_CONSTANT
            f.w_noise = math.sqrt(2.0) * ph.read  # both devices of a pair, normalized weight units
        rpu.mapping.weight_scaling_omega = 1.0
        rpu.mapping.max_input_size = 0
        rpu.mapping.max_output_size = 0
        rpu.mapping.digital_bias = True
        rpu.drift_compensation = None
        rpu.noise_model = StateIndependentNoiseModel(
            g_converter=SinglePairConductanceConverter(g_max=ph.g_max * 1e6, g_min=ph.g_min * 1e6),
            prog_coeff=[(ph.prog if prog else 0.0) * ph.g_range * 1e6, 0.0, 0.0],
            drift_nu_mean=0.0, drift_nu_std=0.0, read_noise_scale=0.0)
        layers_out.append(convert_to_analog(lin, rpu))
    i = 0
    for name, child in list(analog.named_children()):
        if isinstance(child, nn.Linear):
            setattr(analog, name, layers_out[i])
            i += 1
    analog.eval()
    aihwkit_reprogram(analog)
    return analog


def aihwkit_reprogram(analog) -> None:
    """A fresh draw of programming noise from the stored targets (drift and 1/f noise are off)."""
    for m in analog.modules():
        if hasattr(m, "program_analog_weights"):
            m.program_analog_weights()
            m.drift_analog_weights(0.0)


# ---------------------------------------------------------------------------------------------- CrossSim
def _crosssim_params(ph: Physics, w_max: float, prog: bool, read_mode: str | None, adc_range: float | None):
    from simulator import CrossSimParameters

    p = CrossSimParameters()
    p.core.style = "BALANCED"
    p.core.balanced.style = "ONE_SIDED"      # offset pairs: one device of each pair at G_min
    p.core.rows_max = 1024
    p.core.cols_max = 1024
    p.core.mapping.weights.min = -w_max
    p.core.mapping.weights.max = w_max
    p.xbar.device.Rmin = 1.0 / ph.g_max
    p.xbar.device.Rmax = 1.0 / ph.g_min
    range_norm = ph.g_range / ph.g_max       # CrossSim's errors are in units of G_max
    if prog and ph.prog > 0:
        p.xbar.device.programming_error.enable = True
        p.xbar.device.programming_error.model = "NormalIndependentDevice"
        p.xbar.device.programming_error.magnitude = ph.prog * range_norm
    if read_mode:
        p.xbar.device.read_noise.enable = True
        if read_mode == "range":
            p.xbar.device.read_noise.model = "NormalIndependentDevice"
            p.xbar.device.read_noise.magnitude = ph.read * range_norm
        else:
            p.xbar.device.read_noise.model = "NormalProportionalDevice"
            p.xbar.device.read_noise.magnitude = ph.read
    if adc_range is not None:
        p.xbar.adc.mvm.model = "SignMagnitudeADC"
        p.xbar.adc.mvm.bits = BITS
        p.xbar.adc.mvm.signed = True
        p.xbar.adc.mvm.adc_range_option = "CALIBRATED"
        p.xbar.adc.mvm.calibrated_range = [-adc_range, adc_range]
    return p


def _crosssim_out_scales(model, ph: Physics) -> list[float]:
    """Each layer's factor from CrossSim's ADC units to weight units (read off an ideal build)."""
    from simulator.algorithms.dnn.torch.convert import analog_modules, from_torch

    w_max = [float(m.weight.detach().abs().max()) for m in linears(model)]
    params = [_crosssim_params(ph, wm, False, None, None) for wm in w_max]
    cs = from_torch(copy.deepcopy(model), params)
    scales = []
    for layer in analog_modules(cs):
        core = layer.core.cores[0][0]
        scales.append(float(core.mvm_out_scale))
    return scales


def build_crosssim(model, ph: Physics, full_scales, read_mode: str | None, prog: bool = True):
    from simulator.algorithms.dnn.torch.convert import from_torch

    w_max = [float(m.weight.detach().abs().max()) for m in linears(model)]
    scales = _crosssim_out_scales(model, ph)
    params = [_crosssim_params(ph, wm, prog, read_mode, r_w / s) for wm, r_w, s in zip(w_max, full_scales, scales)]
    return from_torch(copy.deepcopy(model), params).eval()


def crosssim_reprogram(cs) -> None:
    from simulator.algorithms.dnn.torch.convert import reinitialize

    reinitialize(cs)  # re-sets the matrices: a fresh draw of programming error


# ---------------------------------------------------------------------------------------------- timing
def set_threads(n: int):
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=n)  # numpy/OpenBLAS (CrossSim) and aihwkit's BLAS
    except ImportError:
        return None


@torch.no_grad()
def run_pass(m, batches) -> None:
    for b in batches:
        m(b)


def rounds(funcs: dict, repeats: int, digital: str = "digital", warm: dict | None = None) -> dict:
    """Warm up each (with ``warm[name]`` where given: a cheaper call), then ``repeats`` rounds of every
    function in turn. Returns per-name times and the per-round ratio to ``digital``."""
    for k, f in funcs.items():
        (warm or {}).get(k, f)()
    times: dict[str, list[float]] = {k: [] for k in funcs}
    for _ in range(repeats):
        for k, f in funcs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    out = {}
    for k, ts in times.items():
        ratios = [t / d for t, d in zip(ts, times[digital])]
        out[k] = dict(times=ts, median_s=statistics.median(ts), ratio=statistics.median(ratios),
                      ratio_min=min(ratios), ratio_max=max(ratios))
    return out


# ---------------------------------------------------------------------------------------------- workloads
def physics_check(model, ph, fs, x) -> list[dict]:
    """ADC-only (no noise): fraction of outputs within one ADC step of memristive's, per tool."""
    with torch.no_grad():
        ref = build_memristive(model, ph, fs, None, prog=False)(x)[0]
        step = fs[-1] / QMAX
        outs = {}
        if USE["aihwkit"]:
            outs["aihwkit torch tile"] = build_aihwkit(model, ph, fs, "torch", False, prog=False)(x)
            outs["aihwkit C++ tile"] = build_aihwkit(model, ph, fs, "cpp", False, prog=False)(x)
        if USE["crosssim"]:
            outs["CrossSim"] = build_crosssim(model, ph, fs, None, prog=False)(x)
        rows = []
        for name, y in outs.items():
            d = (y.float() - ref).abs()
            rows.append(dict(tool=name, within_1_step=float((d <= step * 1.0001).float().mean()),
                             max_diff_steps=float(d.max() / step)))
        return rows


def inference_workloads(model, ph, fs, x, args) -> dict:
    batches = x.split(args.batch)
    n_slow = max(args.batch, min(args.slow_inputs, len(x)))
    slow_batches = x[:n_slow].split(args.batch)
    slow_scale = len(x) / n_slow

    mem_add = build_memristive(model, ph, fs, "range")
    mem_rel = build_memristive(model, ph, fs, "relative")
    if USE["aihwkit"]:
        aih_torch = build_aihwkit(model, ph, fs, "torch", read_noise=False)
        aih_cpp = build_aihwkit(model, ph, fs, "cpp", read_noise=True)
    if USE["crosssim"]:
        cs_add = build_crosssim(model, ph, fs, "range")
        cs_noread = build_crosssim(model, ph, fs, None)
        cs_rel = build_crosssim(model, ph, fs, "relative")

    t0 = time.perf_counter()
    mem_many = build_memristive(model, ph, fs, "range", trials=args.instances)
    t_prog_many = time.perf_counter() - t0

    loop = min(args.loop, args.instances)
    loop_scale = args.instances / loop

    def looped(m, reprogram):
        def f():
            for _ in range(loop):
                reprogram(m)
                run_pass(m, batches)
        return f

    funcs = {"digital": lambda: run_pass(model, batches), "mem_add": lambda: run_pass(mem_add, batches)}
    if USE["aihwkit"]:
        funcs["aih_torch_add"] = lambda: run_pass(aih_torch, batches)
        funcs["aih_cpp_add"] = lambda: run_pass(aih_cpp, batches)
    if USE["crosssim"]:
        funcs["cs_add"] = lambda: run_pass(cs_add, slow_batches)
        funcs["cs_noread"] = lambda: run_pass(cs_noread, batches)
    funcs["mem_rel"] = lambda: run_pass(mem_rel, batches)
    if USE["crosssim"]:
        funcs["cs_rel"] = lambda: run_pass(cs_rel, slow_batches)
    funcs["mem_many"] = lambda: run_pass(mem_many, batches)
    if USE["aihwkit"]:
        funcs["aih_torch_many"] = looped(aih_torch, aihwkit_reprogram)
        funcs["aih_cpp_many"] = looped(aih_cpp, aihwkit_reprogram)
    if USE["crosssim"]:
        funcs["cs_many"] = looped(cs_noread, crosssim_reprogram)
    one = batches[:1]
    res = rounds(funcs, args.repeats, warm={"cs_add": lambda: run_pass(cs_add, one),
                                            "cs_rel": lambda: run_pass(cs_rel, one)})
    for k in ("cs_add", "cs_rel"):
        if k in res:
            res[k].update(extrapolated_from_inputs=n_slow, scale=slow_scale)
    for k in ("aih_torch_many", "aih_cpp_many", "cs_many"):
        if k in res:
            res[k].update(extrapolated_from_instances=loop, scale=loop_scale)
    for k, v in res.items():
        s = v.get("scale", 1.0)
        v["median_s"] *= s
        v["ratio"] *= s
        v["ratio_min"] *= s
        v["ratio_max"] *= s
    res["mem_many"]["program_s"] = t_prog_many
    return res


def training_workloads(x, y, args) -> dict:
    """One epoch (batch 100, lr 0.1, cross-entropy) of a bias-free 784x256x10 ReLU MLP: digital SGD,
    memristive's analog SGD (the settings of ``benchmarks/bench_analog.py``: aihwkit's ConstantStep
    device parameters, stochastic pulse trains, one device pulsed per weight), memristive's
    pulse-level in-situ trainer on VTEAM pairs, and aihwkit's AnalogSGD on ConstantStepDevice."""
    from memristive.config import from_dict
    from memristive.methods.analog_optim import AnalogSGD as MemAnalogSGD, trial_loss
    from memristive.methods.dtga import DTGAConfig, InSituMLP
    from memristive.nn import mlp

    loss_fn = nn.CrossEntropyLoss()
    xb, yb = x.split(args.batch), y.split(args.batch)

    def sgd_epoch(model, opt, loss=loss_fn, train_mode=True):
        # memristive's in-situ optimizers train in eval mode: a converted model's train mode is
        # hardware-aware training (fresh arrays programmed from the digital weights every forward)
        model.train(train_mode)
        for a, b in zip(xb, yb):
            opt.zero_grad()
            loss(model(a), b).backward()
            opt.step()

    torch.manual_seed(0)
    dig = mlp([784, 256, 10], "relu", bias=False)
    dig_opt = torch.optim.SGD(dig.parameters(), lr=0.1)
    funcs = {"digital": lambda: sgd_epoch(dig, dig_opt)}

    torch.manual_seed(0)
    mem_cfg = CrossbarConfig(memristor="aihwkit-constant-step", mapping={"kind": "balanced", "w_max": 1.2})
    mem = convert(mlp([784, 256, 10], "relu", bias=False), mem_cfg, trials=1, seed=0)
    mem_opt = MemAnalogSGD(mem, lr=0.1, scheme="stochastic", seed=0, pair="pos")
    funcs["mem_analog_sgd"] = lambda: sgd_epoch(mem, mem_opt, trial_loss, train_mode=False)

    if USE["aihwkit"]:
        from aihwkit.nn import AnalogLinear
        from aihwkit.optim import AnalogSGD
        from aihwkit.simulator.configs import SingleRPUConfig
        from aihwkit.simulator.configs.devices import ConstantStepDevice

        torch.manual_seed(0)
        rpu = SingleRPUConfig(device=ConstantStepDevice())
        aih = nn.Sequential(AnalogLinear(784, 256, bias=False, rpu_config=rpu), nn.ReLU(),
                            AnalogLinear(256, 10, bias=False, rpu_config=rpu))
        aih_opt = AnalogSGD(aih.parameters(), lr=0.1)
        aih_opt.regroup_param_groups(aih)
        funcs["aih_sgd"] = lambda: sgd_epoch(aih, aih_opt)

    def insitu(scheme):
        cfg = from_dict(DTGAConfig, dict(sizes=[784, 256, 10], w_max=[1.0, 4.0], update=dict(scheme=scheme)))
        m = InSituMLP(cfg, trials=1, seed=0, noise=0.02)
        gen = torch.Generator().manual_seed(0)
        return lambda: m.train_epoch(x, y, gen, progress=False)

    funcs["mem_insitu_dtga"] = insitu("dtga")
    return rounds(funcs, max(1, args.train_repeats))


LABELS = {
    "digital": ("digital torch pass (nn.Linear)", "", ""),
    "mem_add": ("one noisy instance, additive read noise", "memristive", ""),
    "aih_torch_add": ("one noisy instance, additive read noise", "aihwkit torch tile", "no read noise: cannot be expressed"),
    "aih_cpp_add": ("one noisy instance, additive read noise", "aihwkit C++ tile", ""),
    "cs_add": ("one noisy instance, additive read noise", "CrossSim", ""),
    "cs_noread": ("one noisy instance, additive read noise", "CrossSim", "no read noise (CrossSim redraws it per input vector)"),
    "mem_rel": ("one noisy instance, relative read noise", "memristive", ""),
    "cs_rel": ("one noisy instance, relative read noise", "CrossSim", ""),
    "mem_many": ("N instances (additive read noise)", "memristive", "one batched pass"),
    "aih_torch_many": ("N instances (additive read noise)", "aihwkit torch tile", "looped; no read noise"),
    "aih_cpp_many": ("N instances (additive read noise)", "aihwkit C++ tile", "looped"),
    "cs_many": ("N instances (additive read noise)", "CrossSim", "looped; no read noise"),
}
TRAIN_LABELS = {
    "digital": ("one training epoch, 10k samples", "digital torch SGD", ""),
    "aih_sgd": ("one training epoch, 10k samples", "aihwkit AnalogSGD", "ConstantStepDevice, C++ pulsed update"),
    "mem_analog_sgd": ("one training epoch, 10k samples", "memristive AnalogSGD", "ConstantStep (aihwkit's parameters), stochastic pulses"),
    "mem_insitu_dtga": ("one training epoch, 10k samples", "memristive InSituMLP", "DTGA, VTEAM pairs"),
}


def table(rows: list[dict]) -> str:
    threads = sorted({r["threads"] for r in rows})
    keys = []
    for r in rows:
        if (r["workload"], r["tool"], r["note"]) not in keys:
            keys.append((r["workload"], r["tool"], r["note"]))
    head = "| workload | tool | " + " | ".join(f"{t} thr: s | {t} thr: × digital" for t in threads) + " | note |"
    sep = "|---|---|" + "---:|---:|" * len(threads) + "---|"
    lines = [head, sep]
    for w, tool, note in keys:
        cells = []
        for t in threads:
            r = next((r for r in rows if (r["workload"], r["tool"], r["note"], r["threads"]) == (w, tool, note, t)), None)
            if r is None:
                cells += ["–", "–"]
            else:
                rng = f" ({r['ratio_min']:.3g}–{r['ratio_max']:.3g})" if r["ratio_max"] > r["ratio_min"] else ""
                cells += [f"{r['median_s']:.3g}", f"{r['ratio']:.3g}{rng}"]
        lines.append(f"| {w} | {tool} | " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--inputs", type=int, default=10_000)
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--loop", type=int, default=20, help="instances the anchors actually loop over (scaled to --instances)")
    ap.add_argument("--slow-inputs", type=int, default=100, help="inputs CrossSim's per-vector read-noise rows run on (scaled to --inputs)")
    ap.add_argument("--prog", type=float, default=0.05, help="programming variation std / (G_max - G_min)")
    ap.add_argument("--read", type=float, default=0.02, help="read-noise std / (G_max - G_min) or / G")
    ap.add_argument("--without", nargs="*", default=[], choices=["aihwkit", "crosssim"],
                    help="leave a tool out (e.g. while aihwkit is still compiling); its rows are absent")
    ap.add_argument("--no-train", action="store_true", help="leave out the training epochs")
    ap.add_argument("--no-infer", action="store_true", help="leave out the inference workloads")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--out", default="runs/anchors")
    args = ap.parse_args()
    for key in ("repeats", "batch", "inputs", "instances", "loop", "slow_inputs"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')}={getattr(args, key)}: must be >= 1")
    if any(t < 1 for t in args.threads):
        ap.error(f"--threads={args.threads}: each must be >= 1")

    import importlib.metadata as md

    try:
        if "aihwkit" not in args.without:
            import aihwkit  # noqa: F401
        if "crosssim" not in args.without:
            import simulator  # noqa: F401
    except ImportError as e:
        sys.exit(f"compare.py needs aihwkit and CrossSim ({e}); build them with `make anchors` and run with "
                 ".venv-anchors/bin/python (or leave a tool out with --without)")
    global USE
    USE = {"aihwkit": "aihwkit" not in args.without, "crosssim": "crosssim" not in args.without}
    from memristive.experiments.runner import RunFolder

    dev = preset("ti-alox-taox")
    ph = Physics(prog=args.prog, read=args.read, g_min=dev.g_min, g_max=dev.g_max)
    x, x_train, y_train, source = load_data(args.inputs, 10_000)
    model = make_mlp(0)
    fs = adc_full_scales(model, x[:500])

    def ver(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    info = dict(versions=dict(torch=torch.__version__, aihwkit=ver("aihwkit"), crosssim=ver("CrossSim"),
                              memristive=memristive.__version__, python=platform.python_version()),
                data=source, inputs=len(x), batch=args.batch, physics=ph.__dict__, adc_full_scale_weight_units=fs,
                args=vars(args), cpu_count=os.cpu_count())
    out = RunFolder(args.out, "anchors", info)
    print(f"[compare] data: {source}; torch {torch.__version__}, aihwkit {info['versions']['aihwkit'] if USE['aihwkit'] else '(left out)'}, "
          f"CrossSim {info['versions']['crosssim']}; ADC full scale (weight units) {[round(f, 3) for f in fs]}")

    if not args.no_check:
        set_threads(1)
        chk = physics_check(model, ph, fs, x[:500])
        info["physics_check"] = chk
        for r in chk:
            print(f"[compare] ADC-only agreement with memristive, {r['tool']}: {100 * r['within_1_step']:.2f}% of "
                  f"outputs within one ADC step (max {r['max_diff_steps']:.2f} steps)")

    rows = []
    for thr in args.threads:
        lim = set_threads(thr)
        load0 = os.getloadavg()[0]
        if not args.no_infer:
            print(f"[compare] {thr} thread(s), load {load0:.2f}: inference ...", flush=True)
        res = {} if args.no_infer else inference_workloads(model, ph, fs, x, args)
        for k, v in res.items():
            w, tool, note = LABELS[k]
            w = w.replace("N instances", f"{args.instances} instances")
            if k == "digital":
                tool = "digital torch"
            extra = ""
            if "extrapolated_from_inputs" in v:
                extra = f"; timed on {v['extrapolated_from_inputs']} inputs, scaled ×{v['scale']:.0f}"
            if "extrapolated_from_instances" in v:
                extra = f"; {v['extrapolated_from_instances']} looped, scaled ×{v['scale']:.0f}"
            rows.append(dict(workload=w, tool=tool, note=(note + extra).lstrip("; "), threads=thr, key=k,
                             load=load0, **{kk: vv for kk, vv in v.items() if kk != "times"}, times=v["times"]))
        if not args.no_train:
            print(f"[compare] {thr} thread(s): training ...", flush=True)
            tr = training_workloads(x_train, y_train, args)
            for k, v in tr.items():
                w, tool, note = TRAIN_LABELS[k]
                rows.append(dict(workload=w, tool=tool, note=note, threads=thr, key="train_" + k, load=load0,
                                 **{kk: vv for kk, vv in v.items() if kk != "times"}, times=v["times"]))
        rows[-1]["load_end"] = os.getloadavg()[0]
        if lim is not None:
            lim.restore_original_limits()
        out.write_json("results.json", dict(info=info, rows=rows))  # after each thread count: resumable view

    md_table = table(rows)
    prog = [f"{r['threads']} thread(s): {r['program_s']:.2f} s" for r in rows if "program_s" in r]
    if prog:
        md_table += (f"\n\nmemristive's {args.instances}-instance row excludes programming the instances "
                     f"(building the batched crossbars, done once): " + ", ".join(prog) + ".")
    out.write_json("results.json", dict(info=info, rows=rows))
    out.write_csv("results.csv", [{k: v for k, v in r.items() if k != "times"} for r in rows])
    text = (f"784x256x10 MLP, {len(x)} {source} inputs, batch {args.batch}; medians of {args.repeats} rounds "
            f"(training: {args.train_repeats}); ratios per round against the digital pass of the same round "
            f"(range over rounds in brackets)\n\n{md_table}\n")
    from memristive.io import atomic_write_bytes

    atomic_write_bytes(out.file("table.md"), text.encode())
    print("\n" + text)
    print(f"[compare] wrote {out.file('results.json')}, results.csv, table.md")


if __name__ == "__main__":
    main()
