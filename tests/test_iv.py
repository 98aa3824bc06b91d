"""Nonlinear read I–V: the relations, the Newton line-resistance solve (vs an independent dense nodal
Newton and vs ngspice with behavioural sources), and the crossbar-level read."""

import math

import pytest
import torch

from memristive.circuit import LineResistance, find_ngspice, tile_netlist, transfer_conductance
from memristive.circuit.layout import effective_g_diff
from memristive.circuit.ngspice import simulate_tile
from memristive.circuit.nonlinear import NewtonError, nonlinear_currents, nonlinear_read
from memristive.config import ConfigError
from memristive.crossbar import Crossbar, CrossbarConfig, Tiling
from memristive.devices.iv import LinearIV, SinhIV, iv_from_spec

needs_ngspice = pytest.mark.skipif(find_ngspice() is None, reason="ngspice is not installed (make system-deps)")


def rand_tile(R, C, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return 1 / 12e3 + (1 / 1e3 - 1 / 12e3) * torch.rand(R, C, generator=gen, dtype=dtype)


def test_sinh_relation_hand_values():
    iv = SinhIV(b=2.0)
    v = torch.tensor([0.0, 0.1, -0.3], dtype=torch.float64)
    g = torch.tensor(1e-3, dtype=torch.float64)
    assert torch.allclose(iv.current(v, g), 1e-3 * torch.tensor([0.0, math.sinh(0.2) / 2, -math.sinh(0.6) / 2],
                                                                 dtype=torch.float64), rtol=1e-14)
    assert torch.allclose(iv.differential(v, g), 1e-3 * torch.cosh(2 * v), rtol=1e-14)
    # small-signal conductance is G (h'(0) = 1); tiny b is ohmic
    assert iv.differential(torch.zeros(1, dtype=torch.float64), g).item() == pytest.approx(1e-3)
    assert SinhIV(1e-6).current(v, g).sub(g * v).abs().max() < 1e-15
    assert iv.spice(1e-3, "V(a,b)") == "0.0005*sinh(2.0*V(a,b))"
    assert LinearIV().current(v, g).equal(g * v)
    with pytest.raises(ConfigError, match="iv.b"):
        SinhIV(b=0)
    with pytest.raises(ConfigError, match="iv.kind='cubic'"):
        iv_from_spec({"kind": "cubic"})
    assert isinstance(iv_from_spec("sinh"), SinhIV) and isinstance(iv_from_spec(None), LinearIV)


def test_without_wires_every_cell_sees_its_driver():
    g = torch.tensor([[1e-3, 2e-3], [3e-4, 5e-4]], dtype=torch.float64)
    v = torch.tensor([[0.2, -0.1]], dtype=torch.float64)
    b = 3.0
    h = [math.sinh(b * 0.2) / b, math.sinh(-b * 0.1) / b]
    expect = torch.tensor([[1e-3 * h[0] + 3e-4 * h[1], 2e-3 * h[0] + 5e-4 * h[1]]], dtype=torch.float64)
    assert torch.allclose(nonlinear_currents(g, v, SinhIV(b)), expect, rtol=1e-14)


@pytest.mark.parametrize("r_row,r_col", [(2.0, 3.0), (2.0, 0.0), (0.0, 3.0)])
def test_linear_iv_with_wires_equals_the_linear_solver(r_row, r_col):
    g = torch.stack([rand_tile(10, 6, s) for s in range(3)])
    v = 0.3 * torch.rand(3, 5, 10, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    out, iters = nonlinear_currents(g, v, None, r_row, r_col, return_iterations=True)
    ref = v @ transfer_conductance(g, r_row, r_col)
    assert torch.allclose(out, ref, rtol=1e-11, atol=0)
    assert iters <= 2  # a linear network: one step, one to confirm


def _dense_newton(G, v, b, r_row, r_col):
    """Independent reference: all 2·R·C node voltages, residual by explicit loops, autograd Jacobian."""
    R, C = G.shape
    g_r, g_c = 1 / r_row, 1 / r_col

    def F(x):
        u = x[: R * C].reshape(R, C)
        w = x[R * C :].reshape(R, C)
        res = []
        for i in range(R):
            for j in range(C):
                left = v[i] if j == 0 else u[i, j - 1]
                r = g_r * (u[i, j] - left) + G[i, j] * torch.sinh(b * (u[i, j] - w[i, j])) / b
                if j < C - 1:
                    r = r + g_r * (u[i, j] - u[i, j + 1])
                res.append(r)
        for i in range(R):
            for j in range(C):
                below = w[i + 1, j] if i < R - 1 else torch.zeros((), dtype=x.dtype)
                r = -G[i, j] * torch.sinh(b * (u[i, j] - w[i, j])) / b + g_c * (w[i, j] - below)
                if i > 0:
                    r = r + g_c * (w[i, j] - w[i - 1, j])
                res.append(r)
        return torch.stack(res)

    x = torch.cat([v.repeat_interleave(C), torch.zeros(R * C, dtype=v.dtype)])
    for _ in range(50):
        J = torch.autograd.functional.jacobian(F, x)
        dx = torch.linalg.solve(J, -F(x))
        x = x + dx
        if dx.abs().max() < 1e-14:
            break
    return g_c * x[R * C :].reshape(R, C)[R - 1]


def test_newton_matches_an_independent_dense_nodal_newton():
    G = rand_tile(4, 3, 5)
    v = torch.tensor([0.3, -0.2, 0.25, 0.1], dtype=torch.float64)
    ref = _dense_newton(G, v, 4.0, 3.0, 5.0)
    out = nonlinear_currents(G, v, SinhIV(4.0), 3.0, 5.0)[0]
    assert torch.allclose(out, ref, rtol=1e-10, atol=0)
    # and it differs from both the ohmic solve and the wire-free nonlinear read by a lot more
    assert ((nonlinear_currents(G, v, None, 3.0, 5.0)[0] - ref).abs() / ref.abs()).max() > 1e-3
    assert ((nonlinear_currents(G, v, SinhIV(4.0))[0] - ref).abs() / ref.abs()).max() > 1e-3


def test_newton_convergence_and_errors():
    G = rand_tile(16, 8, 1).expand(2, -1, -1)
    v = 0.5 * torch.ones(2, 3, 16, dtype=torch.float64)
    _, iters = nonlinear_currents(G, v, SinhIV(6.0), 5.0, 5.0, return_iterations=True)
    assert 2 <= iters <= 8  # quadratic convergence from the ideal-crossbar start
    with pytest.raises(NewtonError, match="no convergence after 1 Newton steps"):
        nonlinear_currents(G, v, SinhIV(6.0), 5.0, 5.0, max_iter=1)
    with pytest.raises(ValueError, match="negative conductance"):
        nonlinear_currents(-G, v, SinhIV(1.0), 1.0, 1.0)


def test_crossbar_level_nonlinear_read():
    w = torch.randn(20, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = CrossbarConfig(tile=Tiling(8, 8))
    xb = Crossbar.from_weights(w, config=cfg, trials=2, seed=1)
    v = 0.2 * torch.rand(4, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gp, gn = xb.conductances
    # linear I–V without wires: exactly the crossbar's own read (before R_s)
    lin = nonlinear_read(xb.g_pos, xb.g_neg, "differential", cfg.tile, v)
    assert torch.allclose(lin, v @ (gp - gn), rtol=1e-12, atol=1e-18)
    # linear I–V with wires: the IR-drop read matrix of the linear solver, tile by tile
    lin_w = nonlinear_read(xb.g_pos, xb.g_neg, "differential", cfg.tile, v, None, 1.0, 1.0)
    m = effective_g_diff(xb.g_pos, xb.g_neg, "differential", cfg.tile, LineResistance(1.0, 1.0))
    assert torch.allclose(lin_w, v @ m, rtol=1e-10)
    # sinh without wires: a linear read of the shaped voltages
    iv = SinhIV(3.0)
    nl = nonlinear_read(xb.g_pos, xb.g_neg, "differential", cfg.tile, v, iv)
    assert torch.allclose(nl, iv.shape(v) @ (gp - gn), rtol=1e-12, atol=1e-18)


def test_netlist_uses_behavioural_sources():
    net = tile_netlist(rand_tile(2, 2, 0), torch.tensor([0.1, 0.2]), iv=SinhIV(2.0), r_row=1.0, r_col=1.0)
    assert "BC0_0 r0_0 c0_0 I=" in net.text and "sinh(2.0*V(r0_0,c0_0))" in net.text
    assert "RC0_0" not in net.text and ".options reltol=1e-12" in net.text
    assert "BC" not in tile_netlist(rand_tile(2, 2, 0), torch.tensor([0.1, 0.2])).text


@needs_ngspice
@pytest.mark.parametrize("R,C,r_row,r_col,b,v_max", [(16, 8, 0.0, 0.0, 4.0, 0.5), (16, 8, 2.0, 3.0, 4.0, 0.5),
                                                     (32, 16, 1.0, 1.0, 6.0, 0.4), (24, 12, 5.0, 0.5, 2.0, 0.8),
                                                     (16, 8, 3.0, 0.0, 5.0, 0.5), (16, 8, 0.0, 3.0, 5.0, 0.5)])
def test_newton_vs_ngspice_random_arrays(R, C, r_row, r_col, b, v_max):
    G = rand_tile(R, C, R * 31 + C)
    v = v_max * (2 * torch.rand(R, generator=torch.Generator().manual_seed(R + C), dtype=torch.float64) - 0.5)
    iv = SinhIV(b)
    spice = simulate_tile(G, v, 1e3, r_row, r_col, iv=iv)
    sim = -1e3 * nonlinear_currents(G, v, iv, r_row, r_col)[0]
    assert ((sim - spice).abs() / spice.abs()).max() <= 1e-6


def test_nonlinear_iv_experiment_smoke(tmp_path):
    from memristive.experiments.runner import run_experiment

    results, _ = run_experiment("nonlinear-iv", out=tmp_path / "nl", quick=True,
                                overrides=["n_train=600", "n_test=200", "nonlinearities=[0.0, 4.0]",
                                           "read_voltages=[0.2]", "wire_samples=1", "wire_tile=8",
                                           "wire_nonlinearities=[0.0, 4.0]"])
    assert "energy_per_inference_j" in results["hardware_cost"], results["hardware_cost"]  # the run's cost
    pts = results["metrics"]["points"]
    assert pts[0]["layer1_rel_error"] == 0.0 and pts[1]["layer1_rel_error"] > 0.01
    wires = results["metrics"]["wires"]
    assert all(w["layer1_rel_error_vs_ideal_ohmic"] > 0 for w in wires)
    assert wires[1]["newton_iterations"] >= 2


def _sinh_xb(tile=None, lr=None, trials=2, mapping="differential", b=3.0, **kw):
    w = torch.randn(20, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = CrossbarConfig(memristor={"kind": "sinh", "r_on": 1e3, "r_off": 12e3, "b": b}, mapping=mapping, tile=tile,
                         line_resistance=lr, **kw)
    return Crossbar.from_weights(w, config=cfg, trials=trials, seed=1)


def test_crossbar_read_path_uses_the_memristors_iv():
    from memristive.devices import SinhDevice

    xb = _sinh_xb()
    assert isinstance(xb.memristor, SinhDevice) and xb.memristor.current(torch.tensor(0.1), torch.tensor(1e-3)) == \
        pytest.approx(1e-3 * math.sinh(0.3) / 3)
    v = 0.2 * torch.rand(4, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gp, gn = xb.conductances
    # no wires: every cell sees its driver, I = G·sinh(bV)/b; the TIA gives −R_s·I, sign folded in
    expect = (torch.sinh(3.0 * v) / 3.0) @ (gp - gn) * xb.config.r_s
    assert torch.allclose(xb.mvm(v), expect, rtol=1e-12)
    # the periphery still assumes an ohmic array: matmul differs from the weights by the nonlinearity
    lin = Crossbar.from_weights(torch.randn(20, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
                                memristor={"kind": "linear", "r_on": 1e3, "r_off": 12e3}, trials=2, seed=1)
    assert torch.allclose(lin.mvm(v), v @ (gp - gn) * 1e3, rtol=1e-12)
    assert not torch.allclose(xb.mvm(v), lin.mvm(v), rtol=1e-3)
    # with tiles, wires and a per-tile ADC: the Newton solve, row tile by row tile
    from memristive.crossbar import Converter

    xw = _sinh_xb(tile=Tiling(8, 8), lr=LineResistance(1.0, 2.0))
    ref = nonlinear_read(xw.g_pos, xw.g_neg, "differential", xw.config.tile, v, SinhIV(3.0), 1.0, 2.0)
    assert torch.allclose(xw.mvm(v), ref * 1e3, rtol=1e-10)
    xa = _sinh_xb(tile=Tiling(8, 8), lr=LineResistance(1.0, 2.0), adc=Converter(bits=6))
    xa.calibrate_adc(v / xa.config.v_read)
    parts = nonlinear_read(xa.g_pos, xa.g_neg, "differential", xa.config.tile, v, SinhIV(3.0), 1.0, 2.0,
                           per_row_tile=True) * 1e3
    assert float(xa.adc_range) == pytest.approx(float(parts.abs().max()), rel=1e-9)
    assert torch.allclose(xa.mvm(v), xa.config.adc(parts, float(xa.adc_range)).sum(1), rtol=1e-9, atol=1e-12)
    with pytest.raises(ConfigError, match="memristor.b"):
        _sinh_xb(b=-1.0)


@needs_ngspice
@pytest.mark.parametrize("mapping", ["differential", "reference"])
def test_crossbar_with_nonlinear_cells_vs_ngspice(mapping):
    from memristive.circuit import simulate_crossbar

    xb = _sinh_xb(tile=Tiling(16, 16), lr=LineResistance(2.0, 2.0), trials=1, mapping=mapping, b=4.0)
    v = 0.3 * torch.rand(20, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    res = simulate_crossbar(xb, v, trial=0, tile=(0, 0))
    assert "BC0_0" in res["netlist"].text
    # this tile's partial sums: the crossbar read of the inputs on its rows only
    v_tile = v.clone()
    v_tile[16:] = 0
    sim = xb.mvm(v_tile)[0, 0, res["output_index"]]
    assert ((sim - res["outputs"]).abs() / res["outputs"].abs()).max() <= 1e-6
