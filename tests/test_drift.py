"""Drift, retention, time-dependent read noise and drift compensation against hand calculations."""

import math

import pytest
import torch

from memristive.config import ConfigError
from memristive.devices import LinearDevice
from memristive.drift import (
    PCMDrift,
    PCMProgramming,
    RRAMRetention,
    YEAR,
    build_time_effect,
    column_drift_scale,
    global_drift_scale,
    pcm_nu_stats,
    pcm_programming_sigma,
    pcm_read_noise_sigma,
    power_law_drift,
    retention_shift,
)

G_MAX = 25e-6
DEV = LinearDevice(g_min=0.0, g_max=G_MAX)


def gen(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_power_law_at_known_nu():
    g0 = torch.tensor([1e-5, 2e-5], dtype=torch.float64)
    nu = torch.tensor([0.05, 0.1], dtype=torch.float64)
    out = power_law_drift(g0, nu, 200.0, 20.0)  # one decade
    assert torch.allclose(out, torch.tensor([1e-5 * 10 ** -0.05, 2e-5 * 10 ** -0.1], dtype=torch.float64), rtol=1e-14)
    assert torch.equal(power_law_drift(g0, nu, 20.0, 20.0), g0)
    with pytest.raises(ConfigError, match="t=10.0"):
        power_law_drift(g0, nu, 10.0, 20.0)


def test_nu_statistics_match_the_published_fit():
    g = torch.tensor([G_MAX, 0.1 * G_MAX, 1e-9 * G_MAX], dtype=torch.float64)
    mu, sig = pcm_nu_stats(g, G_MAX)
    # x = 1: both clipped at their lower bounds
    assert mu[0].item() == pytest.approx(0.049) and sig[0].item() == pytest.approx(0.008)
    # x = 0.1: inside the clip range
    ln = math.log(0.1)
    assert mu[1].item() == pytest.approx(-0.0155 * ln + 0.0244, rel=1e-12)
    assert sig[1].item() == pytest.approx(-0.0125 * ln - 0.0059, rel=1e-12)
    # tiny x: floored at 1e-7, then clipped at the upper bounds
    assert mu[2].item() == pytest.approx(0.1) and sig[2].item() == pytest.approx(0.045)


def test_pcm_drift_same_instance_at_every_time():
    g = torch.full((4000,), 0.5 * G_MAX, dtype=torch.float64)
    eff = PCMDrift(read_noise=False)
    st_a = eff.draw(g, DEV, gen(3))
    st_b = eff.draw(g, DEV, gen(3))
    assert torch.equal(st_a["nu"], st_b["nu"])  # same seed, same ν
    g1, g2 = eff.at(g, st_a, 100.0, DEV), eff.at(g, st_a, 1e6, DEV)
    # the ratio between two read times is the power law of the stored ν, device by device
    expect = ((1e6 + 20.0) / (100.0 + 20.0)) ** (-st_a["nu"])
    assert torch.allclose(g2 / g1, expect, rtol=1e-12)
    assert torch.equal(eff.at(g, st_a, 0.0, DEV), g)
    # ν statistics at x = 0.5 (|μ + σξ| with μ ≫ σ: folding is negligible)
    mu, sig = pcm_nu_stats(g[:1], G_MAX)
    nu = st_a["nu"]
    assert nu.mean().item() == pytest.approx(mu.item(), abs=4 * sig.item() / math.sqrt(4000))
    assert nu.std().item() == pytest.approx(sig.item(), rel=0.06)


def test_constant_nu_and_drift_scale():
    g = torch.full((20000,), 1e-5, dtype=torch.float64)
    eff = PCMDrift(g_dependent=False, nu_mean=0.1, nu_std=0.01, drift_scale=0.5, read_noise=False)
    nu = eff.draw(g, DEV, gen(1))["nu"]
    assert nu.mean().item() == pytest.approx(0.05, abs=4 * 0.005 / math.sqrt(20000))
    assert nu.std().item() == pytest.approx(0.005, rel=0.03)


def test_read_noise_sigma_hand_value_and_draw():
    g = torch.tensor([0.5 * G_MAX, 1e-6 * G_MAX], dtype=torch.float64)
    s = pcm_read_noise_sigma(g, G_MAX, 3600.0 + 20.0, 250e-9)
    q = min(0.0088 / 0.5 ** 0.65, 0.2)
    fac = math.sqrt(math.log((3620.0 + 250e-9) / 500e-9))
    assert s[0].item() == pytest.approx(q * fac, rel=1e-12)
    assert s[1].item() == pytest.approx(0.2 * fac, rel=1e-12)  # Q_s capped at 0.2
    # the drawn noise has that relative spread around the drifted value
    eff = PCMDrift(g_dependent=False, nu_mean=0.0, nu_std=0.0)
    gg = torch.full((50000,), 0.5 * G_MAX, dtype=torch.float64)
    out = eff.at(gg, eff.draw(gg, DEV, gen(0)), 3600.0, DEV, gen(5))
    rel = out / gg - 1
    assert rel.std().item() == pytest.approx(q * fac, rel=0.02)
    assert abs(rel.mean().item()) < 4 * q * fac / math.sqrt(50000)


def test_programming_sigma_polynomial():
    g = torch.tensor([0.0, 0.5 * G_MAX, G_MAX], dtype=torch.float64)
    s = pcm_programming_sigma(g, G_MAX)
    expect = [0.26348, 0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25, 0.26348 + 1.9650 - 1.1731]
    assert torch.allclose(s, torch.tensor(expect, dtype=torch.float64) * 1e-6, rtol=1e-12)
    # G_max = 50 µS doubles the spread (aihwkit scales by G_max / 25 µS)
    assert torch.allclose(pcm_programming_sigma(2 * g, 2 * G_MAX), 2 * s, rtol=1e-12)

    gg = torch.full((40000,), 0.5 * G_MAX, dtype=torch.float64)
    out, stuck = PCMProgramming().apply(gg, DEV, gen(2))
    assert stuck is None
    assert (out - gg).std().item() == pytest.approx(expect[1] * 1e-6, rel=0.02)


def test_retention_hand_calculation():
    g = torch.tensor([10e-6, 50e-6], dtype=torch.float64)
    xi = torch.tensor([1.0, -2.0], dtype=torch.float64)
    t, t0 = 999.0, 1.0  # L = log10(1000) = 3 decades
    out = retention_shift(g, xi, t, t0, sigma=0.01, relax=0.1, g_relax=30e-6, g_range=90e-6)
    pull = 0.3
    expect = g + pull * (30e-6 - g) + 0.01 * 3 * 90e-6 * xi
    assert torch.allclose(out, expect, rtol=1e-12)
    assert torch.equal(retention_shift(g, xi, 0.0, t0, 0.01, 0.1, 30e-6, 90e-6), g)
    # the relaxation saturates at the relaxed level, the floor is 0 S
    assert torch.allclose(retention_shift(g, torch.zeros(2, dtype=torch.float64), 1e20, 1.0, 0.0, 0.5, 30e-6, 1.0),
                          torch.full((2,), 30e-6, dtype=torch.float64))
    assert retention_shift(g, torch.tensor([-1e9, 0.0], dtype=torch.float64), 9.0, 1.0, 1.0, 0.0, 0.0, 1.0)[0] == 0


def test_rram_retention_spread_grows_with_log_time_same_instance():
    eff = RRAMRetention(sigma=0.02, t0=1.0)
    dev = LinearDevice(g_min=10e-6, g_max=100e-6)
    g = torch.full((20000,), 50e-6, dtype=torch.float64)
    st = eff.draw(g, dev, gen(4))
    spreads = [eff.at(g, st, t, dev).std().item() for t in (9.0, 99.0, 9999.0)]
    for decades, s in zip((1, 2, 4), spreads):
        assert s == pytest.approx(0.02 * decades * 90e-6, rel=0.03)
    # the same device keeps its direction: G(t) − G0 has one sign over time
    d1 = eff.at(g, st, 9.0, dev) - g
    d2 = eff.at(g, st, 9999.0, dev) - g
    assert torch.equal(d1.sign(), d2.sign())
    assert torch.allclose(d2, 4 * d1, rtol=1e-12)


def test_global_compensation_restores_a_known_scale():
    ref0 = torch.randn(3, 50, 7, generator=gen(0), dtype=torch.float64)
    scale = torch.tensor([0.5, 0.8, 0.9], dtype=torch.float64).view(3, 1, 1)
    alpha = global_drift_scale(ref0, ref0 * scale)
    assert alpha.shape == (3, 1, 1)
    assert torch.allclose(alpha, 1 / scale, rtol=1e-12)
    y = torch.randn(3, 10, 7, generator=gen(1), dtype=torch.float64)
    assert torch.allclose(y * scale * alpha, y, rtol=1e-12)
    # a global factor cannot undo different column scales; the per-column one does
    col = torch.linspace(0.5, 1.0, 7, dtype=torch.float64).view(1, 1, 7)
    a_col = column_drift_scale(ref0, ref0 * col)
    assert a_col.shape == (3, 1, 7)
    assert torch.allclose(a_col, (1 / col).expand(3, 1, 7), rtol=1e-12)
    g_alpha = global_drift_scale(ref0, ref0 * col)
    assert not torch.allclose(ref0 * col * g_alpha, ref0)
    # hand value of the global factor: ratio of mean absolute readouts
    r0 = torch.tensor([[[1.0, -3.0]]], dtype=torch.float64)
    rt = torch.tensor([[[0.5, -1.0]]], dtype=torch.float64)
    assert global_drift_scale(r0, rt).item() == pytest.approx(4 / 1.5)
    with pytest.raises(ValueError, match="readouts"):
        global_drift_scale(r0, rt[..., :1])


def test_configs_validate_and_build():
    with pytest.raises(ConfigError, match="pcm_drift.t0"):
        PCMDrift(t0=0)
    with pytest.raises(ConfigError, match="rram_retention.relax"):
        RRAMRetention(relax=2.0)
    with pytest.raises(ConfigError, match="kind='nope'"):
        build_time_effect({"kind": "nope"})
    eff = build_time_effect({"kind": "rram_retention", "sigma": 0.05})
    assert isinstance(eff, RRAMRetention) and eff.sigma == 0.05
    with pytest.raises(ConfigError):
        build_time_effect({"kind": "pcm_drift", "bogus": 1})


def _xb(time_effect, trials=3, seed=5, **kw):
    from memristive.crossbar import Crossbar

    w = torch.randn(12, 4, generator=gen(11), dtype=torch.float64)
    return Crossbar.from_weights(w, memristor=DEV, trials=trials, seed=seed, time_effect=time_effect, **kw)


def test_crossbar_reads_the_same_instance_at_any_time():
    xb = _xb(PCMDrift(read_noise=False))
    g0 = xb.g_pos.clone()
    nu = dict(xb.named_buffers(remove_duplicate=False))["time_pos_nu"]
    assert nu.shape == g0.shape and xb.time == 0.0
    g_a = xb.at(1e3).g_pos.clone()
    g_b = xb.at(1e6).g_pos.clone()
    assert xb.time == 1e6
    assert torch.allclose(g_b, g0 * ((1e6 + 20.0) / 20.0) ** (-nu), rtol=1e-12)
    assert torch.allclose(g_b, g_a * ((1e6 + 20) / (1e3 + 20)) ** (-nu), rtol=1e-12, atol=0)
    assert torch.equal(xb.at(0.0).g_pos, g0)  # back to the programmed values: nothing is lost
    assert xb.g_pos.data_ptr() != dict(xb.named_buffers(remove_duplicate=False))["g0_pos"].data_ptr()  # no alias
    # same seed, same instance; another seed, another ν
    assert torch.equal(dict(_xb(PCMDrift()).named_buffers(remove_duplicate=False))["time_pos_nu"], dict(xb.named_buffers(remove_duplicate=False))["time_pos_nu"])
    assert not torch.equal(dict(_xb(PCMDrift(), seed=6).named_buffers(remove_duplicate=False))["time_pos_nu"], nu)
    # the read follows: weights shrink by the power law
    y0 = xb.at(0.0).weights()
    assert xb.at(1e6).weights().abs().sum() < y0.abs().sum()


def test_crossbar_time_state_saves_and_loads():
    xb = _xb({"kind": "rram_retention", "sigma": 0.05})
    xb.at(3600.0)
    other = _xb({"kind": "rram_retention", "sigma": 0.05}, seed=9)
    other.load_state_dict(xb.state_dict())
    assert other.time == 3600.0 and torch.equal(other.g_pos, xb.g_pos)
    assert torch.equal(other.at(1e5).g_pos, xb.at(1e5).g_pos)  # loaded ξ: the same future
    with pytest.raises(ConfigError, match="time_effect is not set"):
        _xb(None).at(1.0)
    with pytest.raises(ConfigError, match="t=-1"):
        xb.at(-1)
    with pytest.raises(ConfigError, match="crossbar.time_effect.kind='nope'"):
        _xb({"kind": "nope"})


def test_compensation_restores_a_uniform_drift_exactly():
    # constant ν, no 1/f noise: every conductance shrinks by the same factor, so the global factor from the
    # one-hot readouts undoes the drift exactly (and equals the power law)
    xb = _xb(PCMDrift(g_dependent=False, nu_mean=0.05, nu_std=0.0, read_noise=False))
    eye = torch.eye(12, dtype=torch.float64)
    ref0 = xb.matmul(eye)
    x = torch.rand(7, 12, generator=gen(3), dtype=torch.float64)
    y0 = xb.matmul(x)
    xb.at(YEAR)
    alpha = global_drift_scale(ref0, xb.matmul(eye))
    assert torch.allclose(alpha, torch.full_like(alpha, ((YEAR + 20) / 20) ** 0.05), rtol=1e-12)
    assert torch.allclose(xb.matmul(x) * alpha, y0, rtol=1e-12)
    assert torch.allclose(column_drift_scale(ref0, xb.matmul(eye)), alpha.expand(3, 1, 4), rtol=1e-12)


def test_drift_experiment_smoke(tmp_path):
    from memristive.experiments.runner import run_experiment

    results, _ = run_experiment("drift", out=tmp_path / "drift", quick=True,
                                overrides=["n_train=600", "n_test=200", "trials=3", "times=[1.0, 315576000.0]"])
    assert "energy_per_inference_j" in results["hardware_cost"], results["hardware_cost"]  # the run's cost
    pts = results["metrics"]["points"]
    assert len(pts) == 2 * 2 * 3
    for model in ("pcm", "rram"):
        for t in (1.0, 315576000.0):
            by = {p["compensation"]: p for p in pts if p["model"] == model and p["time_s"] == t}
            # bias-free Abs MLP: one scale per layer never changes the arg-max
            assert by["global"]["mean"] == by["none"]["mean"]
    pcm10 = [p for p in pts if p["model"] == "pcm" and p["time_s"] == 315576000.0 and p["compensation"] == "global"][0]
    assert pcm10["layer1_alpha_mean"] > 1.5  # ten years of PCM drift: the periphery gains > 1.5x back
