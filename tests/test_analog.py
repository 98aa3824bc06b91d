"""Update schemes, the (x, δ) tap, and the analog optimizers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from memristive.config import ConfigError
from memristive.crossbar import CrossbarConfig
from memristive.devices.pulsed import ConstantStepDevice, SoftBoundsDevice
from memristive.methods.analog import DeterministicPulses, ManhattanPulses, StochasticPulses, update_scheme
from memristive.methods.analog_optim import AnalogSGD, MixedPrecision, TikiTaka, trial_loss
from memristive.nn import convert, mlp


def linear_model(w: torch.Tensor, dev, trials: int = 1, seed: int = 0) -> nn.Module:
    """One CrossbarLinear holding ``w`` (inputs × outputs) on balanced pairs, w_max = 1."""
    lin = nn.Linear(w.shape[0], w.shape[1], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w.t())
    cfg = CrossbarConfig(memristor=dev, mapping={"kind": "balanced", "w_max": 1.0})
    return convert(nn.Sequential(lin), cfg, trials=trials, seed=seed)


# ============================================================================ schemes
@pytest.mark.parametrize("sampling", ["sparse", "dense"])
@pytest.mark.parametrize("signed", [True, False], ids=["signed-x", "nonnegative-x"])
def test_stochastic_pulse_trains_mean_update(signed, sampling):
    """E[n_up − n_down]·dw = −lr·Σ_b x_b δ_bᵀ (update management, no clipping), estimated over many draws."""
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([[[0.9, -0.4, 0.2], [0.1, 0.5, -0.7]]])  # (1, B=2, rows=3)
    x = x if signed else x.abs()
    d = torch.tensor([[[0.3, -0.1], [-0.2, 0.25]]])  # (1, B=2, cols=2)
    lr, dw = 0.5, 0.01
    expected = -lr * (x.transpose(1, 2) @ d)[0] / dw  # in pulses
    scheme = StochasticPulses(bl=31, sampling=sampling)
    reps = 1500
    draws = []
    for _ in range(reps):
        up, dn = scheme.counts(x, d, lr, dw, gen)
        assert torch.equal(up, up.round()) and (up >= 0).all() and (dn >= 0).all()
        draws.append((up - dn)[0])
    draws = torch.stack(draws)
    se = draws.std(0) / reps ** 0.5  # standard error of the mean, per cell
    assert ((draws.mean(0) - expected).abs() <= 4 * se + 1e-6).all(), (draws.mean(0), expected, se)
    assert float(se.max()) < 0.15  # the check above is sharp: well below one pulse


@pytest.mark.parametrize("sampling", ["sparse", "dense"])
def test_stochastic_pulse_trains_bits_are_exact_at_probability_one(sampling):
    """With p = q = 1 every bit coincides: exactly BL pulses of sign −sign(xδ) per sample."""
    x = torch.tensor([[[1.0, -1.0]]])
    d = torch.tensor([[[1.0, -1.0]]])
    scheme = StochasticPulses(bl=7, bl_management=False, update_management=False, sampling=sampling)
    lr, dw = 7.0, 1.0  # C = sqrt(lr/(BL dw)) = 1 -> p = q = 1
    up, dn = scheme.counts(x, d, lr, dw, torch.Generator().manual_seed(0))
    assert up[0].tolist() == [[0.0, 7.0], [7.0, 0.0]]
    assert dn[0].tolist() == [[7.0, 0.0], [0.0, 7.0]]
    up, dn = scheme.counts(x.abs(), d, lr, dw, torch.Generator().manual_seed(0))  # the x >= 0 path
    assert up[0].tolist() == [[0.0, 7.0], [0.0, 7.0]] and dn[0].tolist() == [[7.0, 0.0], [7.0, 0.0]]


def test_sparse_and_dense_coincidences_have_the_same_distribution():
    """Both samplers simulate the same bit streams: per-cell mean and variance of the counts agree
    (two trials, a batch of 3, mixed signs), and so does the covariance of two cells sharing a row."""
    gen = torch.Generator().manual_seed(1)
    x = torch.tensor([[[0.9, -0.4, 0.0], [0.1, 0.5, -0.7], [0.3, 0.3, 0.3]]])
    d = torch.tensor([[[0.3, -0.1], [-0.2, 0.25], [0.05, 0.4]], [[0.1, 0.1], [0.0, -0.3], [0.2, 0.2]]])
    stats = {}
    for sampling in ("sparse", "dense"):
        scheme = StochasticPulses(bl=15, sampling=sampling)
        draws = torch.stack([torch.stack(scheme.counts(x, d, 0.3, 0.01, gen)) for _ in range(1500)])
        stats[sampling] = (draws.mean(0), draws.var(0), (draws[:, 0, 0, 0, 0] * draws[:, 0, 0, 0, 1]).mean())
    for a, b in zip(stats["sparse"], stats["dense"]):
        assert torch.allclose(a, b, rtol=0.12, atol=0.2), (a, b)


def test_manhattan_signs_and_threshold():
    x = torch.tensor([[[1.0, 2.0]]])
    d = torch.tensor([[[0.5, -0.01]]])  # grad = [[0.5, -0.01], [1.0, -0.02]]
    up, dn = ManhattanPulses().counts(x, d, 1.0, 1.0, None)
    assert (up - dn)[0].tolist() == [[-1.0, 1.0], [-1.0, 1.0]]
    up, dn = ManhattanPulses(threshold=0.015).counts(x, d, 1.0, 1.0, None)
    assert (up - dn)[0].tolist() == [[-1.0, 0.0], [-1.0, 1.0]]


def test_deterministic_rounding_threshold_and_cap():
    u = torch.tensor([0.4, 0.6, -1.5, 2.7, -7.2, 3.2])
    assert DeterministicPulses().quantize(u, None).tolist() == [0.0, 1.0, -2.0, 3.0, -7.0, 3.0]
    assert DeterministicPulses(rounding="truncate").quantize(u, None).tolist() == [0.0, 0.0, -1.0, 2.0, -7.0, 3.0]
    assert DeterministicPulses(threshold=3.0, max_pulses=5).quantize(u, None).tolist() == [0, 0, 0, 0, -5, 3]
    s = DeterministicPulses(rounding="stochastic").quantize(torch.full((100_000,), 0.3), torch.Generator().manual_seed(0))
    assert set(s.unique().tolist()) == {0.0, 1.0} and float(s.mean()) == pytest.approx(0.3, abs=0.005)


def test_scheme_specs_validated():
    assert isinstance(update_scheme({"kind": "stochastic", "bl": 10}), StochasticPulses)
    with pytest.raises(ConfigError, match="scheme.kind"):
        update_scheme("sgd")
    with pytest.raises(ConfigError, match="scheme.bl"):
        StochasticPulses(bl=0)


# ============================================================================ tap + optimizers
def test_tap_records_the_true_weight_gradient():
    """x and δ captured by the hooks give x^T δ = ∂L/∂W of the same network computed digitally."""
    torch.manual_seed(0)
    net = mlp([6, 5, 3], "relu")
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(0.5)
    dev = ConstantStepDevice(dw_min=0.001)
    cfg = CrossbarConfig(memristor=dev, mapping={"kind": "balanced", "w_max": 1.0})
    hw = convert(net, cfg)
    opt = AnalogSGD(hw, lr=0.1)
    x, y = torch.rand(4, 6), torch.tensor([0, 2, 1, 2])
    trial_loss(hw(x), y).backward()
    ref = nn.functional.cross_entropy(net(x), y)
    ref.backward()
    for i, (name, layer) in enumerate(opt.layers.items()):
        xs, ds = opt.tap.pop(layer)
        grad = (xs.transpose(1, 2) @ ds)[0]
        assert torch.allclose(grad, net[2 * i].weight.grad.t(), atol=1e-5)


def test_analog_sgd_deterministic_moves_conductances_by_whole_pulses():
    dev = ConstantStepDevice(g_min=0.0, g_max=1.0, dw_min=0.01)
    model = linear_model(torch.zeros(2, 2), dev)
    opt = AnalogSGD(model, lr=1.0, scheme="deterministic")
    xb = model[0].crossbar
    g0 = xb.g_pos.clone()
    x = torch.tensor([[1.0, 0.0]])
    out = model(x)
    # dL/dy = [0.05, -0.031]: ΔW row 0 = −lr·δ = [-0.05, +0.031]; one pulse (pair) = 2·0.01·1/k... = 0.02
    (out * torch.tensor([0.05, -0.031])).sum().backward()
    opt.step()
    dg = ((xb.g_pos - g0)[0] / 0.01).flatten()
    assert dg.tolist() == pytest.approx([-2.0, 2.0, 0.0, 0.0], abs=1e-5)  # round(-2.5)=-2, round(1.55)=2
    assert opt.totals()["pulses"] == 8  # 4 pulses per device, two devices per weight


def test_mixed_precision_transfer_threshold_and_residue():
    """χ accumulates −lr·grad/dw; trunc(χ) pulses are written once |χ| >= threshold; the remainder stays."""
    dev = ConstantStepDevice(g_min=0.0, g_max=1.0, dw_min=0.01)
    model = linear_model(torch.zeros(1, 2), dev)
    opt = MixedPrecision(model, lr=1.0, threshold=2.0)
    xb = model[0].crossbar
    dw = 0.02  # weight change of one pair pulse: (0.01 + 0.01)·range/k, k = range/w_max = 1
    g0 = xb.g_pos.clone()
    history = []
    for _ in range(3):
        opt.zero_grad()
        (model(torch.ones(1, 1)) * torch.tensor([-0.7 * dw, 0.3 * dw])).sum().backward()
        opt.step()
        history.append(((xb.g_pos - g0)[0, 0] / 0.01).tolist())
        chi = opt.state[xb.g_pos]["chi"][0, 0].tolist()
    # column 0: χ = 0.7, 1.4, 2.1 -> 2 pulses at step 3, residue 0.1; column 1: -0.3, -0.6, -0.9 -> none
    assert history[0] == pytest.approx([0, 0], abs=1e-6)
    assert history[1] == pytest.approx([0, 0], abs=1e-6)
    assert history[2] == pytest.approx([2, 0], abs=1e-5)
    assert chi == pytest.approx([0.1, -0.9], abs=1e-5)


def test_optimizer_errors():
    with pytest.raises(ConfigError, match="no analog layers"):
        AnalogSGD(nn.Linear(2, 2))
    # training mode = hardware-aware training (fresh arrays from the digital weights): the optimizer's
    # writes would never be read, so a forward in that mode is refused
    model = linear_model(torch.zeros(2, 2), ConstantStepDevice())
    opt = AnalogSGD(model)
    model.train()
    with pytest.raises(RuntimeError, match="model.eval"):
        model(torch.ones(1, 2))
    model.eval()
    with torch.no_grad():
        model.train()(torch.ones(1, 2))  # nothing is recorded without autograd
    opt.close()
    model = linear_model(torch.zeros(2, 2), ConstantStepDevice())
    with pytest.raises(ConfigError, match="lr"):
        AnalogSGD(model, lr=-1)
    with pytest.raises(ConfigError, match="threshold"):
        MixedPrecision(model, threshold=0.5)


def regression(opt_kind: str, steps: int, seed: int = 0, trials: int = 4, **kw) -> torch.Tensor:
    """Noisy linear regression y = x W* + ε on symmetric soft-bounds pairs; RMS weight error per trial."""
    g = torch.Generator().manual_seed(seed)
    w_true = (torch.rand(8, 4, generator=g) * 2 - 1) * 0.5
    model = linear_model(torch.zeros(8, 4), SoftBoundsDevice(dw_min=0.01), trials=trials, seed=seed)
    opt = (AnalogSGD if opt_kind == "sgd" else TikiTaka)(model, seed=seed, **kw)
    for _ in range(steps):
        x = torch.randn(8, 8, generator=g)
        y = x @ w_true + 0.5 * torch.randn(8, 4, generator=g)
        opt.zero_grad()
        (0.5 * ((model(x) - y) ** 2).sum(-1).mean(-1).sum()).backward()
        opt.step()
    return ((model[0].crossbar.weights() - w_true) ** 2).mean(dim=(1, 2)).sqrt()


def test_tiki_taka_solves_what_analog_sgd_on_soft_bounds_cannot():
    """Soft-bounds devices drift to their symmetry point under noisy updates: plain analog SGD ends
    biased towards W = 0, Tiki-Taka (fast array at the symmetry point, transfers to C) does not.
    Measured (docs/results/analog.md): 2000 steps, RMS error SGD 0.08-0.10 vs TT 0.02-0.035."""
    sgd = regression("sgd", 800, lr=0.05)
    tt = regression("tt", 800, lr=0.05, transfer_lr=0.05)
    assert float(sgd.min()) > 0.06
    assert float(tt.max()) < 0.045
    assert float(tt.mean()) < 0.6 * float(sgd.mean())


def test_state_dict_resumes_training_exactly():
    """Model + optimizer state (device draws, fast array, buffers, generator) reproduce the continuation."""
    from memristive.devices.pulsed import pulsed_preset

    def make():
        torch.manual_seed(0)
        cfg = CrossbarConfig(memristor=pulsed_preset("reram-sb"), mapping={"kind": "balanced", "w_max": 1.0})
        m = convert(mlp([6, 5, 3], "relu"), cfg, trials=2)
        return m, TikiTaka(m, lr=0.1, buffered=True, n_rows_per_transfer=2, seed=3)

    x, y = torch.rand(16, 6, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3

    def steps(m, opt, n):
        for i in range(n):
            opt.zero_grad()
            trial_loss(m(x[i % 2 * 8:(i % 2 + 1) * 8]), y[i % 2 * 8:(i % 2 + 1) * 8]).backward()
            opt.step()

    m1, o1 = make()
    steps(m1, o1, 3)
    saved_m, saved_o = copy.deepcopy(m1.state_dict()), copy.deepcopy(o1.state_dict())
    steps(m1, o1, 2)
    m2, o2 = make()
    m2.load_state_dict(saved_m)
    o2.load_state_dict(saved_o)
    steps(m2, o2, 2)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), k
    assert o1.totals() == o2.totals()


@pytest.mark.parametrize("dev", [ConstantStepDevice(dw_min=0.01, up_down=0.1), SoftBoundsDevice(dw_min=0.01)],
                         ids=["constant-step", "soft-bounds"])
def test_sparse_write_equals_dense_write(dev, monkeypatch):
    """Writing only the pulsed cells gives bit-identical conductances to sending every cell through."""
    from memristive.methods import analog

    out = []
    for frac in (0.0, 1.0):  # always dense, always sparse
        monkeypatch.setattr(analog, "SPARSE_WRITE", frac)
        model = linear_model(torch.rand(5, 4, generator=torch.Generator().manual_seed(0)) - 0.5, dev, trials=2)
        xb = model[0].crossbar
        w = analog.PairWriter(dev, xb.g_pos, xb.g_neg, xb.k, "both", torch.Generator().manual_seed(1))
        gen = torch.Generator().manual_seed(2)
        n = torch.randint(-3, 4, (2, 5, 4), generator=gen).float() * (torch.rand(2, 5, 4, generator=gen) < 0.3)
        w.write(n.clamp(min=0), (-n).clamp(min=0), gen)
        out.append((xb.g_pos.clone(), xb.g_neg.clone(), w.pulses, w.energy))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    assert out[0][2] == out[1][2] and out[0][3] == pytest.approx(out[1][3], rel=1e-6)


@pytest.mark.parametrize("bl,lr", [(3, 0.05), (31, 0.5)], ids=["every-row-bit-drawn", "bits-drawn-where-p>0"])
def test_int8_coincidence_path_exact_and_unbiased(bl, lr):
    """One trial, >16 rows, x >= 0: the int8 product path (both ways of drawing the row bits: all of
    them for short streams, only where p > 0 for long ones). p = q = 1 gives exactly BL pulses; in
    general the mean count matches lr·x·δ/dw (within 4 standard errors)."""
    from memristive.methods.analog import DENSE_ROW_BITS

    assert (bl <= DENSE_ROW_BITS) == (bl == 3)
    x = torch.ones(1, 1, 24)
    d = torch.tensor([[[1.0, -1.0]]])
    scheme = StochasticPulses(bl=bl, bl_management=False, update_management=False)
    up, dn = scheme.counts(x, d, float(bl), 1.0, torch.Generator().manual_seed(0))
    assert (up[0] == torch.tensor([0.0, bl])).all() and (dn[0] == torch.tensor([bl, 0.0])).all()
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 20, generator=gen) * (torch.rand(1, 3, 20, generator=gen) < 0.6)  # some zero inputs
    d = torch.randn(1, 3, 2, generator=gen) * 0.3
    expected = -lr * (x.transpose(1, 2) @ d)[0] / 0.01
    scheme = StochasticPulses(bl=bl, bl_management=False)  # update management; lr keeps p, q <= 1
    m = lr * x.amax(-1) * d.abs().amax(-1) / 0.01
    assert float(m.max()) <= bl  # no clipping: the mean is exact
    draws = torch.stack([(lambda c: c[0] - c[1])(scheme.counts(x, d, lr, 0.01, gen))[0] for _ in range(800)])
    se = draws.std(0) / 800 ** 0.5
    assert ((draws.mean(0) - expected).abs() <= 4 * se + 1e-6).all()
    assert torch.equal(draws[:, x[0].sum(0) == 0], torch.zeros_like(draws[:, x[0].sum(0) == 0]))  # rows never driven


def test_experiment_configs_validated():
    from memristive.experiments.analog_training import AnalogToyConfig, AnalogTrainingConfig

    with pytest.raises(ConfigError, match="devices"):
        AnalogTrainingConfig(devices=["no-such-device"])
    with pytest.raises(ConfigError, match="optimizers"):
        AnalogTrainingConfig(optimizers=["adam"])
    with pytest.raises(ConfigError, match="datasets"):
        AnalogTrainingConfig(datasets=["cifar10"])
    with pytest.raises(ConfigError, match="dw_min"):
        AnalogToyConfig(dw_min=0.5)
    with pytest.raises(ConfigError, match="models"):
        AnalogTrainingConfig(models=["resnet"])
    with pytest.raises(ConfigError, match="devices"):
        AnalogTrainingConfig(devices=["ti-alox-taox"])  # no pulse response
    with pytest.raises(ConfigError, match="device_w_max"):
        AnalogTrainingConfig(device_w_max={"dtga": 0.0})
    cfg = AnalogTrainingConfig()
    assert cfg.devices[-1] == "dtga" and cfg.models == ["mlp", "lenet5"]
    assert cfg.train_size("lenet5") == cfg.lenet_n_train and cfg.train_size("mlp") == cfg.n_train
    assert "dtga" not in cfg.optimizers  # DTGA is available but off by default (the table is measured)
    assert AnalogTrainingConfig(optimizers=["dtga"], devices=["dtga"]).optimizers == ["dtga"]
    with pytest.raises(ConfigError, match="VTEAM"):
        AnalogTrainingConfig(optimizers=["dtga"])  # the pulsed devices of the default list


# ============================================================================ convolutions, VTEAM
def test_tap_records_the_true_conv_weight_gradient():
    """LeNet-5 converted: the (patches, δ) the conv layers record give x^T δ = ∂L/∂(kernel matrix) of
    the same network computed digitally (Conv2d with padding, Conv1d, and the linear layers)."""
    from memristive.experiments.cnn import lenet5
    from memristive.nn.conv import conv_matrix

    torch.manual_seed(0)
    for net, x in ((lenet5(), torch.rand(3, 1, 28, 28)),
                   (nn.Sequential(nn.Conv1d(2, 3, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(15, 3)),
                    torch.rand(3, 2, 5))):
        hw = convert(net, CrossbarConfig(memristor=ConstantStepDevice(dw_min=0.001), mapping={"kind": "balanced", "w_max": 1.0}))
        opt = AnalogSGD(hw, lr=0.1)
        y = torch.tensor([0, 2, 1])
        trial_loss(hw(x), y).backward()
        nn.functional.cross_entropy(net(x), y).backward()
        for name, layer in opt.layers.items():
            xs, ds = opt.tap.pop(layer)
            ref = net.get_submodule(name).weight.grad
            ref = conv_matrix(ref, 1) if ref.dim() == 3 + (ref.dim() == 4) else ref.t()
            assert torch.allclose((xs.transpose(1, 2) @ ds)[0], ref, atol=1e-6), name
        assert len(opt.layers) == sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) for m in net.modules())


def test_analog_sgd_trains_a_convolution_by_pulses():
    """Deterministic pulses on a converted Conv2d: the kernel matrix moves by −lr·∂L/∂W rounded to whole pulses."""
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    dev = ConstantStepDevice(g_min=0.0, g_max=1.0, dw_min=0.001)
    hw = convert(nn.Sequential(conv), CrossbarConfig(memristor=dev, mapping={"kind": "balanced", "w_max": 1.0}))
    opt = AnalogSGD(hw, lr=0.005, scheme="deterministic")
    x = torch.rand(2, 1, 4, 4)
    w0 = hw[0].crossbar.weights().clone()
    (hw(x) * torch.linspace(-1, 1, 2 * 2 * 16).view(1, 2, 2, 4, 4)).sum().backward()
    opt.step()
    conv.zero_grad()
    (conv(x) * torch.linspace(-1, 1, 2 * 2 * 16).view(2, 2, 4, 4)).sum().backward()
    dw = 2 * 0.001  # one pulse on each device of a balanced pair, k = 1
    pulses = torch.round(-0.005 * conv_matrix_of(conv.weight.grad) / dw)
    assert torch.allclose(hw[0].crossbar.weights()[0] - w0[0], pulses * dw, atol=1e-6)
    assert float(pulses.abs().sum()) > 0


def conv_matrix_of(kernel):
    from memristive.nn.conv import conv_matrix

    return conv_matrix(kernel, 1)


def test_vteam_pairs_train_through_the_device_interface_with_energy():
    """VTEAM (kind 'vteam', preset 'dtga') has no pulse_pair: the writer sends the raising train,
    then the lowering train through Device.pulse; energy is n·V²·t·(G_before + G_after)/2 per train at
    each train's own polarity (SET −0.2134 V for raising G, RESET +0.14 V for lowering it)."""
    from memristive.devices import device_from_spec
    from memristive.methods.analog import PairWriter

    dev = device_from_spec("dtga")
    lin = nn.Linear(2, 2, bias=False)
    nn.init.zeros_(lin.weight)
    cfg = CrossbarConfig(memristor=dev, mapping={"kind": "balanced-state", "w_max": 1.0}, v_read=0.01)
    xb = convert(nn.Sequential(lin), cfg)[0].crossbar
    gp0, gn0 = xb.g_pos.clone(), xb.g_neg.clone()
    w = PairWriter(dev, xb.g_pos, xb.g_neg, xb.k, "both", torch.Generator().manual_seed(0))
    up = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    dn = torch.tensor([[[0.0, 2.0], [0.0, 1.0]]])
    w.write(up, dn, None)
    # G+ gets `up` SET then `dn` RESET pulses; G- the reverse (the nominal device, noise-free)
    gp = dev.pulse(dev.pulse(gp0, up), -dn)
    gn = dev.pulse(dev.pulse(gn0, dn), -up)
    assert torch.allclose(xb.g_pos, gp, rtol=0, atol=1e-12) and torch.allclose(xb.g_neg, gn, rtol=0, atol=1e-12)
    assert xb.g_pos[0, 1, 0] == gp0[0, 1, 0]  # no pulse: exactly unchanged
    v_s, v_r, t = dev.write.v_set, dev.write.v_reset, dev.write.width

    def e(n, v, g0, g1):
        return float((n * v ** 2 * t * (g0 + g1) / 2).sum())

    gp_mid, gn_mid = dev.pulse(gp0, up), dev.pulse(gn0, dn)
    expected = (e(up, v_s, gp0, gp_mid) + e(dn, v_r, gp_mid, gp) + e(dn, v_s, gn0, gn_mid) + e(up, v_r, gn_mid, gn))
    assert w.has_energy and w.energy == pytest.approx(expected, rel=1e-6) and w.energy > 0
    assert w.pulses == 2 * float((up + dn).sum())
    # SET raises G, RESET lowers it
    assert xb.g_pos[0, 0, 0] > gp0[0, 0, 0] and xb.g_pos[0, 0, 1] < gp0[0, 0, 1]


def test_tiki_taka_fast_array_of_a_device_without_symmetry_point_starts_at_its_mid_state():
    from memristive.devices import device_from_spec

    dev = device_from_spec("dtga")
    lin = nn.Linear(3, 2, bias=False)
    nn.init.zeros_(lin.weight)
    cfg = CrossbarConfig(memristor=dev, mapping={"kind": "balanced-state", "w_max": 2.0}, v_read=0.01)
    opt = TikiTaka(convert(nn.Sequential(lin), cfg), lr=0.1)
    fast = opt.fast_writer("0")
    assert torch.allclose(fast.g_pos, torch.full_like(fast.g_pos, dev.g_mid))  # s = 1/2, not the conductance midpoint
    assert torch.equal(fast.g_pos, fast.g_neg)


def test_tiki_taka_reads_each_row_at_most_once_per_transfer():
    """A layer with fewer rows than n_rows_per_transfer transfers every row once (not some twice)."""
    model = linear_model(torch.zeros(3, 2), ConstantStepDevice(dw_min=0.01))
    opt = TikiTaka(model, lr=0.1, n_rows_per_transfer=5, transfer_scheme={"kind": "deterministic"})
    fast = opt.fast_writer("0")
    fast.g_pos.add_(fast.k * 0.045 * torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # A = 0.045 on 4 cells
    w0 = model[0].crossbar.weights().clone()
    model(torch.zeros(1, 3)).sum().backward()  # zero input: no gradient pulses on A
    opt.step()
    moved = (model[0].crossbar.weights() - w0)[0]
    # transfer_lr 1: ΔC = A rounded to whole C pulses (dw 0.02): 0.045 -> 2 pulses = 0.04, once per cell
    assert torch.allclose(moved, 0.04 * torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), atol=1e-6)
    assert opt.totals()["pulses"] == 2 * 4 * 2  # 2 pulses × 4 cells × both devices (rows 0, 1 read twice: 24)


def test_analog_optimizers_refuse_quantized_layers():
    """A quantized layer's output is the array read times per-column scales, so the recorded output
    gradient is not the array weights' gradient: refused with one line naming the layer."""
    from memristive.config import ConfigError
    from memristive.crossbar import CrossbarConfig
    from memristive.methods.analog_optim import AnalogSGD
    from memristive.nn import CrossbarLinear

    torch.manual_seed(0)
    layer = CrossbarLinear.from_linear(torch.nn.Linear(6, 3, bias=False), CrossbarConfig(), bits=4)
    with pytest.raises(ConfigError, match=r"layer '0' is quantized \(bits=4"):
        AnalogSGD(torch.nn.Sequential(layer), lr=0.1)
