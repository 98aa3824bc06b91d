"""The DTGA optimizer (methods.analog_optim.DTGA): hand-computed pulse counts for every scheme and DT
rule, the GA residual, and agreement with the DTGA trainer (InSituMLP) on the same gradients."""

import pytest
import torch
from torch import nn

from memristive.config import ConfigError
from memristive.crossbar import CrossbarConfig
from memristive.devices import vteam_preset
from memristive.methods.analog_optim import DTGA, trial_loss
from memristive.methods.dtga import DTGAConfig, InSituMLP, UpdateRule
from memristive.nn import AppendOne, convert

DEV = vteam_preset("dtga")  # no window, linear R(s) = R_on + (R_off − R_on)·s, 10–100 kΩ


def G(s: float) -> float:
    """Conductance of normalised state s, by hand (linear I–V)."""
    return 1.0 / (DEV.r_on + (DEV.r_off - DEV.r_on) * s)


def layer(rows=2, cols=2, trials=1, w_max=1.0):
    """One converted Linear layer on VTEAM balanced-state pairs, every weight 0 (both devices at s = ½)."""
    lin = nn.Linear(rows, cols, bias=False)
    nn.init.zeros_(lin.weight)
    cfg = CrossbarConfig(memristor=DEV, mapping={"kind": "balanced-state", "w_max": w_max}, v_read=0.01)
    return convert(lin, cfg, trials=trials)


def push(model, opt, grad):
    """One optimizer step whose gradient ∂L/∂W is ``grad`` (rows, cols): inputs = the unit vectors, so
    δ of sample i is row i of ``grad`` and Σ_b x_bᵀ δ_b = grad."""
    rows = grad.shape[0]
    opt.zero_grad()
    (model(torch.eye(rows)) * grad.to(torch.float32)).sum().backward()
    opt.step()


def steps(k: float):
    """Hand values at s = ½: the weight step of one SET on G+ (W up), of one RESET on G+ (W down), Δw₀."""
    u_set, u_reset = DEV.pulse_drives()
    up = (G(0.5 + u_set) - G(0.5)) / k
    dn = (G(0.5) - G(0.5 + u_reset)) / k
    return up, dn, (up + dn) / 2


def test_baseline_counts_and_writes_by_hand():
    """Fixed θ = threshold·Δw₀; n = clamp(round(|A|/Δw₁), 1, 8); at equal headroom (s+ = s− = ½) G+ is
    pulsed: SET for W up, RESET for W down; G− keeps its conductance exactly."""
    model = layer()
    xb = model.crossbar
    up, dn, dw0 = steps(xb.k)
    assert up > dn > 0  # SET steps are larger at mid state (R linear in s: G convex)
    opt = DTGA(model, lr=1.0, update=UpdateRule(scheme="baseline", threshold=0.5, max_pulses=8))
    A = torch.tensor([[2.4 * up, -3.3 * dn], [0.2 * dw0, 20 * up]])  # wanted update; grad = −A/lr
    g_pos0, g_neg0 = xb.g_pos.clone(), xb.g_neg.clone()
    push(model, opt, -A)
    u_set, u_reset = DEV.pulse_drives()
    want = torch.tensor([[G(0.5 + 2 * u_set), G(0.5 + 3 * u_reset)], [G(0.5), G(0.5 + 8 * u_set)]], dtype=torch.float64)
    torch.testing.assert_close(xb.g_pos[0].double(), want, rtol=1e-5, atol=0)
    assert torch.equal(xb.g_neg, g_neg0)
    assert opt.totals()["set"] == 10 and opt.totals()["reset"] == 3 and opt.totals()["pulses"] == 13
    assert not torch.equal(xb.g_pos, g_pos0)


def test_headroom_picks_the_device_with_room():
    """W up with G+ near R_on (little SET headroom) and G− mid: the rule RESETs G− instead."""
    model = layer(rows=1, cols=1)
    xb = model.crossbar
    with torch.no_grad():
        xb.g_pos.fill_(G(0.1))  # s+ = 0.1: s+ + s− − 1 = −0.4 < 0 → G− for W up
    opt = DTGA(model, lr=1.0, update=UpdateRule(scheme="baseline"))
    u_set, u_reset = DEV.pulse_drives()
    dn_neg = (G(0.5) - G(0.5 + u_reset)) / xb.k  # one RESET of G− raises W by this much
    push(model, opt, torch.tensor([[-2.0 * dn_neg]]))
    assert float(xb.g_pos) == pytest.approx(G(0.1), rel=1e-6)
    assert float(xb.g_neg) == pytest.approx(G(0.5 + 2 * u_reset), rel=1e-5)
    assert opt.totals()["reset"] == 2 and opt.totals()["set"] == 0


def test_dt_device_rule_fires_where_the_fixed_threshold_does_not():
    """dt (device rule): θ = dt_factor·Δw₁ of the chosen device — |A| = 1.6·Δw₁ fires 2 pulses under
    dt_factor 0.5, but not under a fixed θ = 2·Δw₀ (baseline); |A| = 0.4·Δw₁ fires under neither."""
    fired = {}
    for scheme in ("baseline", "dt"):
        model = layer(rows=1, cols=2)
        up, dn, dw0 = steps(model.crossbar.k)
        A = torch.tensor([[1.6 * up, 0.4 * up]])
        assert 1.6 * up < 2 * dw0  # the hand case: below the fixed threshold
        opt = DTGA(model, lr=1.0, update=UpdateRule(scheme=scheme, threshold=2.0, dt_factor=0.5))
        push(model, opt, -A)
        fired[scheme] = opt.totals()["set"]
    assert fired == {"baseline": 0, "dt": 2}


def test_dt_layer_rule_threshold_is_kappa_std():
    """dt_rule layer: θ = κ·std(A) (unbiased, over the layer's weights, per trial)."""
    model = layer(rows=2, cols=2)
    up, dn, dw0 = steps(model.crossbar.k)
    a = torch.tensor([[1.0, -1.0], [3.0, 0.2]]) * up
    theta = 1.0 * float(a.std())  # std of [1, −1, 3, 0.2]·up = 1.66·up
    assert 1.0 * up < theta < 3.0 * up
    opt = DTGA(model, lr=1.0, update=UpdateRule(scheme="dt", dt_rule="layer", dt_kappa=1.0))
    push(model, opt, -a)
    assert opt.totals()["set"] == 3 and opt.totals()["reset"] == 0  # only the 3·up weight: round(3) pulses


def test_dt_decay_rule_reads_the_epoch():
    """dt_rule decay: θ = threshold·Δw₀·decay^epoch; at epoch 0 |A| = 1.5·Δw₀ is below θ = 2Δw₀, at
    epoch 2 (θ = 2·0.49·Δw₀) it fires."""
    out = []
    for epoch in (0, 2):
        model = layer(rows=1, cols=1)
        up, dn, dw0 = steps(model.crossbar.k)
        opt = DTGA(model, lr=1.0, update=UpdateRule(scheme="dt", dt_rule="decay", threshold=2.0, dt_decay=0.7))
        for _ in range(epoch):
            opt.new_epoch()
        assert opt.epoch == epoch
        push(model, opt, torch.tensor([[-1.5 * dw0]]))
        out.append(opt.totals()["set"])
    assert out[0] == 0 and out[1] == round(1.5 * dw0 / up)


def test_ga_accumulates_and_keeps_the_nominal_residual():
    """GA: A sums the updates (0.6·Δw₀ twice crosses θ = Δw₀); after firing n pulses A keeps
    A − (the nominal model's change of those n pulses). Without GA (baseline) there is no memory."""
    for scheme, want_set in (("baseline", 0), ("ga", None)):
        model = layer(rows=1, cols=1)
        xb = model.crossbar
        up, dn, dw0 = steps(xb.k)
        opt = DTGA(model, lr=1.0, update=UpdateRule(scheme=scheme, threshold=1.0))
        grad = torch.tensor([[-0.6 * dw0]])
        push(model, opt, grad)
        assert opt.totals()["set"] == 0
        push(model, opt, grad)
        st = opt.state[xb.g_pos]
        if scheme == "baseline":
            assert opt.totals()["set"] == 0 and "accumulator" not in st
            continue
        a = 1.2 * dw0
        n = round(a / up)
        assert opt.totals()["set"] == n >= 1
        u_set, _ = DEV.pulse_drives()
        residual = a - (G(0.5 + n * u_set) - G(0.5)) / xb.k
        assert float(st["accumulator"]) == pytest.approx(residual, rel=1e-4, abs=1e-6 * dw0)


def test_ga_reset_residual_drops_the_remainder():
    model = layer(rows=1, cols=2)
    up, dn, dw0 = steps(model.crossbar.k)
    opt = DTGA(model, lr=1.0, update=UpdateRule(scheme="ga", threshold=1.0, ga_residual="reset"))
    push(model, opt, torch.tensor([[-1.3 * up, -0.4 * dw0]]))
    acc = opt.state[model.crossbar.g_pos]["accumulator"][0, 0]
    assert float(acc[0]) == 0.0  # fired: reset
    assert float(acc[1]) == pytest.approx(0.4 * dw0, rel=1e-5)  # not fired: kept


def test_read_controller_counts_reads_and_measured_residual():
    """controller=read reads both devices of every weight per update; the measured residual subtracts
    the change read back (here the nominal device: equal to the prediction)."""
    model = layer(rows=2, cols=3)
    up, dn, dw0 = steps(model.crossbar.k)
    opt = DTGA(model, lr=1.0, update=UpdateRule(scheme="dtga", controller="read", ga_residual="measured"))
    push(model, opt, torch.full((2, 3), -2.2 * up))
    assert opt.totals()["reads"] == 2 * 6
    u_set, _ = DEV.pulse_drives()
    res = 2.2 * up - (G(0.5 + 2 * u_set) - G(0.5)) / model.crossbar.k
    torch.testing.assert_close(opt.state[model.crossbar.g_pos]["accumulator"][0],
                               torch.full((2, 3), res), rtol=1e-3, atol=1e-4 * up)


def test_bad_options_and_devices_are_rejected():
    model = layer()
    with pytest.raises(ConfigError, match="update.scheme"):
        DTGA(model, update={"scheme": "sgd"})
    with pytest.raises(ConfigError, match="update"):
        DTGA(model, update={"nonsense": 1})
    lin = convert(nn.Linear(2, 2, bias=False), CrossbarConfig(memristor="symmetric-constant-step",
                                                                mapping={"kind": "balanced", "w_max": 1.0}))
    with pytest.raises(ConfigError, match="VTEAM"):
        DTGA(lin)


def twin(cfg: DTGAConfig, trials: int):
    """The trainer's MLP and a converted model with the same weights (biases as array rows)."""
    old = InSituMLP(cfg, trials=trials, seed=0)
    layers, names = [], []
    for i, pl in enumerate(old.layers):
        lin = nn.Linear(pl.in_features + 1, pl.out_features, bias=False)
        with torch.no_grad():
            lin.weight.copy_(pl.weights()[0].t())
        names.append(str(len(layers) + 1))
        layers += [AppendOne(), lin] + ([nn.Sigmoid()] if i < len(old.layers) - 1 else [])
    cfgs = {n: CrossbarConfig(memristor=cfg.device, mapping=cfg.layer_mapping(i), v_read=cfg.v_read)
            for i, n in enumerate(names)}
    return old, convert(nn.Sequential(*layers), cfgs[names[0]], trials=trials, layer_configs=cfgs)


@pytest.mark.parametrize("rule", [
    dict(scheme="baseline"), dict(scheme="dt"), dict(scheme="ga"), dict(scheme="dtga"),
    dict(scheme="dtga", dt_rule="layer"), dict(scheme="dtga", dt_rule="decay"),
    dict(scheme="dtga", controller="read", ga_residual="measured"), dict(scheme="ga", ga_residual="reset"),
    dict(scheme="dtga", pair_rule="set_only"), dict(scheme="dtga", mapping="reference"),
    dict(scheme="dtga", mapping="differential"),
])
def test_same_pulses_as_the_dtga_trainer(rule):
    """Same weights, devices, batches: every step writes the same SET and RESET pulse counts as
    InSituMLP.train_step, and the weights agree to float rounding (the trainer's VTEAMCells and the
    device's pulse() compute the drive in different precisions)."""
    rule = dict(rule)
    mapping = rule.pop("mapping", "balanced-state")  # reference: only G+ trained, on both sides
    cfg = DTGAConfig(sizes=[6, 5, 3], w_max=[6.0, 6.0], lr=2.0, mapping=mapping, update=UpdateRule(**rule))
    old, model = twin(cfg, trials=2)
    opt = DTGA(model, lr=cfg.lr, update=cfg.update)
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        if step == 2:
            old.epochs_done += 1  # the decay rule's epoch, on both
            opt.new_epoch()
        x, y = torch.rand(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        st = old.train_step(x, y)
        before = opt.totals()
        opt.zero_grad()
        trial_loss(model(x), y).backward()
        opt.step()
        after = opt.totals()
        assert (after["set"] - before["set"], after["reset"] - before["reset"]) == (st["set"], st["reset"])
        assert after["set"] + after["reset"] == after["pulses"]
    for pl, m in zip(old.layers, [model[1], model[4]]):
        torch.testing.assert_close(m.crossbar.weights(), pl.weights(), rtol=0, atol=1e-5)
    assert opt.totals()["energy"] > 0


def test_trains_a_convolution():
    """A Conv2d on VTEAM pairs, trained by DTGA on a fixed toy batch: the loss falls and pulses land
    on the convolution's array (its update sums over every output position)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, bias=False), nn.Flatten(), nn.Linear(3 * 4 * 4, 2, bias=False))
    cfg = CrossbarConfig(memristor=DEV, mapping={"kind": "balanced-state", "w_max": 4.0}, v_read=0.01)
    model = convert(net, cfg, trials=2)
    x = torch.rand(16, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0, :3].mean((1, 2)) > x[:, 0, 3:].mean((1, 2))).long()
    conv = model[0]
    g0 = conv.crossbar.g_pos.clone(), conv.crossbar.g_neg.clone()
    opt = DTGA(model, lr=0.5, update=UpdateRule(scheme="dtga"))
    with torch.no_grad():
        loss0 = float(trial_loss(model(x), y))
    for _ in range(30):
        opt.zero_grad()
        trial_loss(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        loss1 = float(trial_loss(model(x), y))
    assert loss1 < 0.8 * loss0
    assert not (torch.equal(conv.crossbar.g_pos, g0[0]) and torch.equal(conv.crossbar.g_neg, g0[1]))


def test_state_dict_round_trip_continues_identically():
    cfg = DTGAConfig(sizes=[6, 5, 3], w_max=[6.0, 6.0], lr=2.0)
    _, a = twin(cfg, trials=1)
    _, b = twin(cfg, trials=1)
    oa, ob = DTGA(a, lr=2.0), DTGA(b, lr=2.0)
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.rand(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)) for _ in range(4)]

    def step(m, o, xy):
        o.zero_grad()
        trial_loss(m(xy[0]), xy[1]).backward()
        o.step()

    for xy in batches[:2]:
        step(a, oa, xy)
    b.load_state_dict(a.state_dict())
    oa.new_epoch()
    ob.load_state_dict(oa.state_dict())
    assert ob.epoch == 1
    for xy in batches[2:]:
        step(a, oa, xy)
        step(b, ob, xy)
    for la, lb in zip([a[1], a[4]], [b[1], b[4]]):
        assert torch.equal(la.crossbar.g_pos, lb.crossbar.g_pos)
    assert oa.totals() == ob.totals()


def test_pair_pos_and_endurance():
    """pair="pos": G− never moves; endurance: every pulse is charged to the one device it went to."""
    cfg = DTGAConfig(sizes=[6, 5, 3], w_max=[6.0, 6.0], lr=2.0)
    for kw in (dict(pair="pos"), dict(endurance={"n_th": 50, "fail_mean": 200})):
        _, m = twin(cfg, trials=2)
        opt = DTGA(m, lr=2.0, **kw)
        g_neg = [m[1].crossbar.g_neg.clone(), m[4].crossbar.g_neg.clone()]
        gen = torch.Generator().manual_seed(1)
        for _ in range(10):
            x, y = torch.rand(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
            opt.zero_grad()
            trial_loss(m(x), y).backward()
            opt.step()
        t = opt.totals()
        assert t["pulses"] == t["set"] + t["reset"] > 0
        unchanged = all(torch.equal(a, b.crossbar.g_neg) for a, b in zip(g_neg, [m[1], m[4]]))
        if "pair" in kw:
            assert unchanged
        else:
            assert not unchanged
            wear = t["endurance"]
            assert wear["pulses_per_device_mean"] * wear["devices"] == pytest.approx(t["pulses"])
