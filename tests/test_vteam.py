"""VTEAM device model: integrator vs a fine-step reference, thresholds, bounds, windows, I–V, D2D/P2P."""

import math

import pytest
import torch

from memristive.config import ConfigError, from_dict
from memristive.devices import Pulse, Variability, VTEAMCells, VTEAMDevice, vteam_preset
from memristive.devices.vteam import (
    advance,
    conductance,
    current,
    drive,
    has_closed_form,
    pulse_conductance,
    pulse_energy,
    pulse_train,
    resistance,
    sample_d2d,
    simulate_waveform,
    state_from_conductance,
    train_drive,
    window_fn,
    window_integral,
)

D64 = torch.float64


def euler_reference(s0, u, window, steps=5000, **wp):
    """Independent fine-step forward Euler of ds/du = f(s) (the state equation at constant drive)."""
    s = s0.clone()
    h = u / steps
    direction = torch.sign(u)
    for _ in range(steps):
        if window == "none":
            f = torch.ones_like(s)
        elif window == "joglekar":
            f = 1 - (2 * s - 1) ** (2 * wp["p"])
        elif window == "biolek":
            f = torch.where(direction >= 0, 1 - s ** (2 * wp["p"]), 1 - (s - 1) ** (2 * wp["p"]))
        elif window == "prodromakis":
            f = wp["j"] * (1 - ((s - 0.5) ** 2 + 0.75) ** wp["p"])
        else:
            f = torch.where(direction >= 0, torch.exp(-torch.exp((s - wp["a_off"]) / wp["w_c"])),
                            torch.exp(-torch.exp(-(s - wp["a_on"]) / wp["w_c"])))
        s = (s + h * f).clamp(0, 1)
    return s


CASES = [
    ("none", dict(p=1)),
    ("joglekar", dict(p=1)),
    ("joglekar", dict(p=2)),
    ("biolek", dict(p=1)),
    ("biolek", dict(p=3)),
    ("prodromakis", dict(p=1, j=1.0)),
    ("prodromakis", dict(p=2, j=2.0)),
    ("kvatinsky", dict(a_on=0.1, a_off=0.9, w_c=0.1)),
]


@pytest.mark.parametrize("window,wp", CASES)
def test_integrator_matches_fine_step_reference(window, wp):
    s0 = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95, 0.5, 0.2, 0.8], dtype=D64)
    u = torch.tensor([0.4, 0.15, -0.3, -0.05, -0.6, 0.02, 1.5, -1.5], dtype=D64)
    full = dict(p=1, j=1.0, a_on=0.0, a_off=1.0, w_c=0.1)
    full.update(wp)
    got = advance(s0, u, window, substeps=64, **full)
    ref = euler_reference(s0, u, window, **full)
    assert torch.allclose(got, ref, atol=5e-4), (window, wp, (got - ref).abs().max())
    # the state moves in the direction of the drive and stays in bounds
    assert ((got - s0) * u >= -1e-12).all()
    assert (got >= 0).all() and (got <= 1).all()


def test_closed_forms_are_the_ones_claimed():
    assert has_closed_form("none") and has_closed_form("joglekar", 1) and has_closed_form("biolek", 1)
    assert not has_closed_form("joglekar", 2) and not has_closed_form("kvatinsky")
    # Joglekar p=1: logit(s1) = logit(s0) + 4u, by hand for s0 = 0.5, u = ln(3)/4 → s1 = 3/4
    s1 = advance(torch.tensor(0.5, dtype=D64), torch.tensor(math.log(3) / 4, dtype=D64), "joglekar")
    assert float(s1) == pytest.approx(0.75, abs=1e-12)
    # Biolek p=1 moving up: s1 = tanh(atanh(0) + u)
    s1 = advance(torch.tensor(0.0, dtype=D64), torch.tensor(0.5, dtype=D64), "biolek")
    assert float(s1) == pytest.approx(math.tanh(0.5), abs=1e-12)


def test_single_pulse_by_hand_memtorch_parameters():
    """Δw = k·(V/v_th − 1)^α·t: +0.14 V, 10 ns → 5e-4·6·1e-8 = 3e-11 m = 1 % of D = 3 nm."""
    dev = vteam_preset("memtorch")
    u_reset = float(dev.drive(0.14)) * 10e-9
    assert u_reset == pytest.approx(3e-11 / 3e-9, rel=1e-9)
    u_set = float(dev.drive(-0.25)) * 10e-9
    assert u_set == pytest.approx(-10 * (0.25 / 0.2 - 1) ** 3 * 1e-8 / 3e-9, rel=1e-9)
    s = advance(torch.tensor(0.5, dtype=D64), torch.tensor(u_reset, dtype=D64))
    assert float(s) == pytest.approx(0.51, abs=1e-12)


def test_no_change_below_thresholds():
    dev = vteam_preset("memtorch")
    v = torch.linspace(dev.v_on, dev.v_off, 101, dtype=D64)
    assert (dev.drive(v) == 0).all()
    assert float(dev.drive(dev.v_off * 1.01)) > 0 and float(dev.drive(dev.v_on * 1.01)) < 0
    # a sub-threshold sinusoid leaves every state exactly where it was (any window)
    t = torch.linspace(0, 1e-6, 400, dtype=D64)
    wave = 0.019 * torch.sin(2 * math.pi * 5e6 * t) - 0.001
    for window in ("none", "biolek", "kvatinsky"):
        d = VTEAMDevice(**{**vteam_preset("memtorch").__dict__, "window": window})
        s0 = torch.tensor([0.1, 0.5, 0.9], dtype=D64)
        states, _ = simulate_waveform(wave, 2.5e-9, s0, d)
        assert torch.equal(states[-1], s0)
    # pulses that would not switch are refused with a message naming the key
    with pytest.raises(ConfigError, match="v_set"):
        Pulse(v_set=-0.15).check_device(dev)
    with pytest.raises(ConfigError, match="v_reset"):
        Pulse(v_reset=0.01).check_device(dev)
    # reads must not disturb: |v_read| above v_off is rejected
    with pytest.raises(ConfigError, match="v_read"):
        dev.check_read_voltage(0.05)


def test_state_bounds_hold_under_huge_drive():
    s0 = torch.rand(200, dtype=D64)
    for window in ("none", "joglekar", "biolek", "prodromakis", "kvatinsky"):
        for u in (50.0, -50.0):
            s = advance(s0, torch.full_like(s0, u), window, p=2 if window != "none" else 1)
            assert (s >= 0).all() and (s <= 1).all()
    # a large sinusoid for the full model: states and conductances stay in range
    dev = vteam_preset("dtga")
    t = torch.linspace(0, 2e-6, 800, dtype=D64)
    states, i = simulate_waveform(1.0 * torch.sin(2 * math.pi * 1e6 * t), 2.5e-9, torch.full((5,), 0.5, dtype=D64), dev)
    assert states.min() >= 0 and states.max() <= 1
    assert states.min() == 0 and states.max() == 1  # it does hit both bounds (clipped, not exceeded)
    g = conductance(states, dev.r_on, dev.r_off, dev.iv)
    assert g.min() >= dev.g_min * (1 - 1e-12) and g.max() <= dev.g_max * (1 + 1e-12)


def test_window_shapes():
    s = torch.linspace(0, 1, 101, dtype=D64)
    up, dn = torch.ones_like(s), -torch.ones_like(s)
    assert torch.equal(window_fn(s, up, "none"), torch.ones_like(s))
    j = window_fn(s, up, "joglekar", p=1)
    assert float(j[0]) == 0 and float(j[-1]) == 0 and float(j[50]) == pytest.approx(1)
    assert torch.allclose(j, j.flip(0))  # symmetric
    j4 = window_fn(s, up, "joglekar", p=4)
    assert (j4 >= j - 1e-12).all()  # larger p: flatter top, steeper edges
    b_up, b_dn = window_fn(s, up, "biolek", p=1), window_fn(s, dn, "biolek", p=1)
    assert float(b_up[0]) == 1 and float(b_up[-1]) == 0  # moving to R_off it stops at s = 1 only
    assert float(b_dn[0]) == 0 and float(b_dn[-1]) == 1  # moving to R_on it stops at s = 0 only
    pr = window_fn(s, up, "prodromakis", p=1, j=2.0)
    assert float(pr[0]) == pytest.approx(0, abs=1e-12) and float(pr[-1]) == pytest.approx(0, abs=1e-12)
    assert float(pr[50]) == pytest.approx(2.0 * (1 - 0.75))  # j·(1 − 0.75^p) at the centre
    k_off = window_fn(s, up, "kvatinsky", a_off=0.8, w_c=0.05)
    k_on = window_fn(s, dn, "kvatinsky", a_on=0.2, w_c=0.05)
    assert float(k_off[80]) == pytest.approx(math.exp(-1)) and float(k_on[20]) == pytest.approx(math.exp(-1))
    assert (k_off.diff() <= 0).all() and (k_on.diff() >= 0).all()
    with pytest.raises(ConfigError, match="window"):
        window_fn(s, up, "triangle")


def test_stick_effect_of_symmetric_windows():
    s0 = torch.tensor([0.0, 1.0], dtype=D64)
    for window in ("joglekar", "prodromakis"):
        assert torch.equal(advance(s0, torch.tensor([0.5, -0.5], dtype=D64), window), s0)
    # Biolek's window is asymmetric: it leaves a bound when driven away from it
    s = advance(s0, torch.tensor([0.5, -0.5], dtype=D64), "biolek")
    assert s[0] > 0 and s[1] < 1


def test_window_integral_inverts_advance():
    s0 = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=D64)
    s1 = torch.tensor([0.5, 0.1, 0.9, 0.3], dtype=D64)
    direction = torch.sign(s1 - s0)
    for window, p in (("none", 1), ("joglekar", 1), ("biolek", 1), ("joglekar", 2), ("kvatinsky", 1)):
        u = window_integral(s0, s1, direction, window, p=p, a_on=0.0, a_off=1.0, w_c=0.2)
        assert torch.allclose(advance(s0, u, window, p=p, a_on=0.0, a_off=1.0, w_c=0.2, substeps=128), s1, atol=1e-6)


def test_iv_relations_by_hand():
    s = torch.tensor([0.0, 0.5, 1.0], dtype=D64)
    r = resistance(s, 1e4, 1e5, "linear")
    assert r.tolist() == pytest.approx([1e4, 5.5e4, 1e5])
    r = resistance(s, 1e4, 1e5, "exponential")
    assert r.tolist() == pytest.approx([1e4, math.sqrt(1e9), 1e5])
    assert float(current(torch.tensor(0.01, dtype=D64), s[1], 1e4, 1e5, "linear")) == pytest.approx(0.01 / 5.5e4)
    for iv in ("linear", "exponential"):
        g = conductance(s, 1e4, 1e5, iv)
        assert torch.allclose(state_from_conductance(g, 1e4, 1e5, iv), s)


def test_d2d_statistics():
    dev = vteam_preset("dtga")
    gen = torch.Generator().manual_seed(1)
    n = 200_000
    p = sample_d2d(dev, (n,), 0.05, generator=gen, dtype=D64)
    for name in ("k_on", "k_off", "r_on", "r_off"):
        base = getattr(dev, name)
        rel = p[name] / base
        assert abs(float(rel.mean()) - 1) < 4 * 0.05 / math.sqrt(n)
        assert float(rel.std()) == pytest.approx(0.05, rel=0.02)
    # independent draws for different parameters
    c = torch.corrcoef(torch.stack([p["k_on"], p["k_off"]]))[0, 1]
    assert abs(float(c)) < 0.02
    logn = sample_d2d(dev, (n,), 0.1, params=["k_off"], distribution="lognormal", generator=gen, dtype=D64)
    lr = torch.log(logn["k_off"] / dev.k_off)
    assert abs(float(lr.mean())) < 4 * 0.1 / math.sqrt(n) and float(lr.std()) == pytest.approx(0.1, rel=0.02)
    with pytest.raises(ValueError, match="lognormal"):
        sample_d2d(dev, (n,), 0.5, generator=gen)  # a normal draw flips a sign somewhere


def test_p2p_statistics_both_modes():
    gen = torch.Generator().manual_seed(2)
    n_dev, u1, sigma = 50_000, 0.01, 0.05
    for n in (1, 4, 9):
        count = torch.full((n_dev,), float(n), dtype=D64)
        u, noise = train_drive(torch.full((n_dev,), u1, dtype=D64), count, sigma, "multiplicative", gen)
        assert noise is None
        assert float(u.mean()) == pytest.approx(n * u1, rel=1e-3)
        assert float(u.std()) == pytest.approx(sigma * math.sqrt(n) * u1, rel=0.04)
        u, noise = train_drive(torch.full((n_dev,), u1, dtype=D64), count, sigma, "additive", gen)
        assert torch.allclose(u, count * u1) and float(noise.std()) == pytest.approx(sigma * math.sqrt(n), rel=0.04)
    # the noise reaches the states: n SET pulses on a no-window device from s = 0.5
    s = pulse_train(torch.full((n_dev,), 0.5, dtype=D64), torch.full((n_dev,), 4.0, dtype=D64), -0.01, 0.01, sigma,
                    "multiplicative", gen)
    ds = 0.5 - s
    assert float(ds.mean()) == pytest.approx(0.04, rel=1e-3) and float(ds.std()) == pytest.approx(0.05 * 2 * 0.01, rel=0.04)
    # no noise: exactly deterministic, and n = 0 leaves states alone
    s = pulse_train(torch.full((3,), 0.5, dtype=D64), torch.tensor([0.0, 2.0, -3.0], dtype=D64), -0.01, 0.02)
    assert s.tolist() == pytest.approx([0.5, 0.48, 0.56])


def test_device_interface_by_hand():
    """The Device interface: bounds, program, pulse response on conductances, I–V."""
    dev = vteam_preset("dtga")  # 10 kΩ / 100 kΩ, linear R(s), no window, 1 % of the state per pulse
    assert dev.kind == "vteam" and dev.has_pulse_response and dev.levels is None
    assert dev.g_min == pytest.approx(1e-5) and dev.g_max == pytest.approx(1e-4) and dev.g_range == pytest.approx(9e-5)
    assert dev.g_mid == pytest.approx(1 / 55e3)  # s = ½ → R = 55 kΩ (not the conductance midpoint)
    g = torch.tensor([2e-5, 5e-5, 1e-4], dtype=D64)
    assert torch.allclose(dev.program(g), g, rtol=1e-12)  # analog: the state holding g has conductance g
    with pytest.raises(ValueError, match="outside"):
        dev.program(torch.tensor([1.2e-4], dtype=D64))
    # one pulse's drive by hand: k·(V/v_th − 1)^α·t/D
    u_set = float(dev.drive(dev.write.v_set)) * dev.write.width
    u_reset = float(dev.drive(dev.write.v_reset)) * dev.write.width
    assert u_reset == pytest.approx(5e-4 * (0.14 / 0.02 - 1) * 1e-8 / 3e-9, rel=1e-12)  # 0.01
    assert u_set == pytest.approx(-10 * (0.2134 / 0.2 - 1) ** 3 * 1e-8 / 3e-9, rel=1e-12)  # −0.01003
    g0 = torch.full((3,), 1 / 55e3, dtype=D64)
    out = dev.pulse(g0, torch.tensor([3.0, 0.0, -2.0], dtype=D64))
    hand = [1 / (1e4 + 9e4 * (0.5 + 3 * u_set)), 1 / 55e3, 1 / (1e4 + 9e4 * 0.52)]
    assert out.tolist() == pytest.approx(hand, rel=1e-12)
    assert out[0] > g0[0] and out[1] == g0[1] and out[2] < g0[2]  # SET raises G; n = 0 leaves it exactly
    # saturation at the bounds: many SET pulses end at G_max, never beyond
    assert float(dev.pulse(g0[:1], torch.tensor([500.0], dtype=D64))) == pytest.approx(dev.g_max, rel=1e-12)
    # I–V: i = v/R(s) = v·g at a read that does not switch the device
    assert float(dev.current(torch.tensor(0.01, dtype=D64), torch.tensor(2e-5, dtype=D64))) == pytest.approx(2e-7)
    # the conductance-domain response is the state-domain one mapped through G(s)
    s = torch.tensor([0.3, 0.7], dtype=D64)
    gs = conductance(s, dev.r_on, dev.r_off)
    n = torch.tensor([4.0, -5.0], dtype=D64)
    direct = conductance(pulse_train(s, n, u_set, u_reset), dev.r_on, dev.r_off)
    assert torch.allclose(pulse_conductance(gs, n, u_set, u_reset, dev.r_on, dev.r_off), direct, rtol=1e-12)
    # energy of a train: |n|·V²·t·(G_before + G_after)/2
    e = pulse_energy(n.clamp(min=0), (-n).clamp(min=0), gs, direct, dev.write)
    assert float(e[0]) == pytest.approx(4 * dev.write.v_set ** 2 * dev.write.width * float(gs[0] + direct[0]) / 2)
    assert float(e[1]) == pytest.approx(5 * dev.write.v_reset ** 2 * dev.write.width * float(gs[1] + direct[1]) / 2)


def test_cells_pulse_pairs_and_state_dict(tmp_path):
    dev = vteam_preset("dtga")
    cells = VTEAMCells(dev, trials=2, shape=(2, 3, 4), variability=Variability.noise_factor(0.05),
                       generator=torch.Generator().manual_seed(0), dtype=D64)
    g = torch.full((2, 3, 4), dev.g_mid, dtype=D64)
    n = torch.zeros(2, 3, 4, dtype=D64)
    n[0, 0, 0], n[1, 2, 3] = 5, -2
    select = torch.zeros_like(n)
    select[0, 0, 0] = 1  # the first pulses go to device 0 (G+) of that pair, the second to device 1
    out = cells.pulse(g, n, torch.Generator().manual_seed(1), select=select)
    assert int((out != g).sum()) == 2 and out[0, 0, 0] > g[0, 0, 0] and out[1, 2, 3] < g[1, 2, 3]
    # the chosen device's own drawn parameters are used: same as pulsing that device alone
    one = pulse_conductance(g[0, 0, 0], n[0, 0, 0], cells.u_set[0, 0, 0, 0], cells.u_reset[0, 0, 0, 0],
                            cells.r_on[0, 0, 0, 0], cells.r_off[0, 0, 0, 0])
    assert float(out[0, 0, 0]) == pytest.approx(float(one), rel=0.2)  # P2P noise (5 %) around it
    noiseless = VTEAMCells(dev, 2, (2, 3, 4), Variability(d2d=0.05), generator=torch.Generator().manual_seed(0),
                           dtype=D64)
    out0 = noiseless.pulse(g, n, select=select)
    assert float(out0[0, 0, 0]) == pytest.approx(float(one), rel=1e-12)
    torch.save(cells.state_dict(), tmp_path / "c.pt")
    other = VTEAMCells(dev, 2, (2, 3, 4), Variability.noise_factor(0.05), dtype=D64)
    other.load_state_dict(torch.load(tmp_path / "c.pt"))
    assert torch.equal(other.u_set, cells.u_set) and torch.equal(other.r_off, cells.r_off)


def test_cells_d2d_per_trial_noise_factor():
    dev = vteam_preset("dtga")
    cells = VTEAMCells(dev, trials=3, shape=(200, 200), variability=Variability(d2d_params=["k_off"]),
                       d2d_sigma=[0.0, 0.02, 0.1], generator=torch.Generator().manual_seed(0), dtype=D64)
    rel = cells.u_reset / cells.u_reset[0, 0, 0]
    assert float(rel[0].std()) == 0
    assert float(rel[1].std()) == pytest.approx(0.02, rel=0.05) and float(rel[2].std()) == pytest.approx(0.1, rel=0.05)


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="k_on"):
        VTEAMDevice(k_on=1.0)
    with pytest.raises(ConfigError, match="r_off"):
        VTEAMDevice(r_on=100, r_off=50)
    with pytest.raises(ConfigError, match="vteam.p"):
        VTEAMDevice(window="joglekar", p=1.5)
    with pytest.raises(ConfigError, match="d2d"):
        Variability(d2d=-0.1)
    with pytest.raises(ConfigError, match="unknown"):
        vteam_preset("nope")
    with pytest.raises(ConfigError, match="v_set"):
        VTEAMDevice(write=Pulse(v_set=-0.1))  # below the SET threshold: the write pulse would do nothing
    dev = from_dict(VTEAMDevice, {"window": "biolek", "p": 2, "iv": "exponential"})
    assert dev.window == "biolek" and dev.iv == "exponential"
    for name in ("memtorch", "dtga", "dtga-exp-biolek"):
        assert vteam_preset(name).source  # every preset says where it comes from
    assert float(drive(torch.tensor(0.0), **vteam_preset("memtorch").rate_params())) == 0


def test_vteam_crossbar_from_a_config_in_a_fresh_process(tmp_path):
    """A VTEAM crossbar is an ordinary crossbar: built from a config (fresh process: the kind is registered
    where it is defined), saved and loaded with torch's defaults, reproducing its outputs exactly."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import torch
        from memristive.config import from_dict
        from memristive.crossbar import Crossbar, CrossbarConfig
        cfg = from_dict(CrossbarConfig, {{"memristor": {{"kind": "vteam", "r_on": 2e4, "r_off": 2e5,
                                          "write": {{"width": 2e-8}}}}, "mapping": "balanced", "v_read": 0.01}})
        w = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
        xb = Crossbar.from_weights(w, config=cfg, trials=2)
        assert xb.memristor.kind == "vteam" and xb.memristor.write.width == 2e-8
        xb.g_pos.copy_(xb.memristor.pulse(xb.g_pos, torch.full_like(xb.g_pos, 3.0)))  # 3 SET pulses each
        x = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
        torch.save(xb.state_dict(), r"{tmp_path / 'xb.pt'}")
        skeleton = Crossbar.from_weights(torch.zeros(6, 3), config=cfg, trials=2)
        skeleton.load_state_dict(torch.load(r"{tmp_path / 'xb.pt'}"))  # torch's defaults (weights_only)
        assert torch.equal(skeleton.matmul(x), xb.matmul(x))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
