"""Line resistance (IR drop): the network solver against hand calculations and an independent dense
nodal analysis, and its use in the crossbar read path."""

import io
import math

import pytest
import torch

from memristive.circuit import LineResistance, effective_g_diff, transfer_conductance
from memristive.circuit.layout import geometry
from memristive.config import ConfigError, from_dict
from memristive.crossbar import Converter, Crossbar, CrossbarConfig, Mapping, Tiling, mapping_from_spec

SOLVERS = ["block", "sparse"]


def dense_reference(g: torch.Tensor, r_row: float, r_col: float) -> torch.Tensor:
    """Independent dense nodal analysis of one tile: every row node u(i,j) and column node w(i,j)
    written out; drivers at the left of each row, TIAs (0 V) below each column."""
    R, C = g.shape
    g = g.double()
    N = 2 * R * C
    u = lambda i, j: i * C + j  # noqa: E731
    w = lambda i, j: R * C + i * C + j  # noqa: E731
    K = torch.zeros(N, N, dtype=torch.float64)
    B = torch.zeros(N, R, dtype=torch.float64)

    def link(a, b, c):
        K[a, a] += c
        K[b, b] += c
        K[a, b] -= c
        K[b, a] -= c

    for i in range(R):
        K[u(i, 0), u(i, 0)] += 1 / r_row
        B[u(i, 0), i] = 1 / r_row
        for j in range(C):
            if j + 1 < C:
                link(u(i, j), u(i, j + 1), 1 / r_row)
            if i + 1 < R:
                link(w(i, j), w(i + 1, j), 1 / r_col)
            link(u(i, j), w(i, j), float(g[i, j]))
    for j in range(C):
        K[w(R - 1, j), w(R - 1, j)] += 1 / r_col
    X = torch.linalg.solve(K, B)  # node voltages for 1 V on each driver
    return torch.stack([X[w(R - 1, j)] / r_col for j in range(C)], 1)


def rand_g(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 1.0 / (1e3 + 11e3 * torch.rand(*shape, generator=gen, dtype=torch.float64))


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


# ---------------------------------------------------------------------------------------------- solver
@pytest.mark.parametrize("solver", SOLVERS)
def test_single_cell_is_a_series_circuit(solver):
    g = torch.tensor([[1e-3]], dtype=torch.float64)
    m = transfer_conductance(g, 2.0, 3.0, solver=solver)
    assert float(m) == pytest.approx(1 / (2.0 + 1000.0 + 3.0), rel=1e-13)


@pytest.mark.parametrize("solver", SOLVERS)
def test_one_row_two_cells_by_series_parallel(solver):
    rr, rc = 5.0, 7.0
    g0, g1 = 1 / 1000, 1 / 4000
    m = transfer_conductance(torch.tensor([[g0, g1]], dtype=torch.float64), rr, rc, solver=solver)[0]
    r1 = 1 / g0 + rc  # branch through cell 0 to TIA 0
    r2 = rr + 1 / g1 + rc  # on along the row, through cell 1 to TIA 1
    par = r1 * r2 / (r1 + r2)
    va = par / (rr + par)  # voltage at the first row node for 1 V on the driver
    assert m[0].item() == pytest.approx(va / r1, rel=1e-12)
    assert m[1].item() == pytest.approx(va / r2, rel=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
def test_two_rows_one_column_by_hand(solver):
    rr, rc = 3.0, 11.0
    g0, g1 = 1 / 2000, 1 / 5000
    m = transfer_conductance(torch.tensor([[g0], [g1]], dtype=torch.float64), rr, rc, solver=solver)[:, 0]
    par = lambda a, b: a * b / (a + b)  # noqa: E731
    # driver 0 at 1 V: reaches the bottom column node w1 through rr + 1/g0 + rc; w1 is loaded by the TIA
    # segment rc and by row 1's path to its (0 V) driver, 1/g1 + rr
    load = par(rc, 1 / g1 + rr)
    v_w1 = load / (rr + 1 / g0 + rc + load)
    assert m[0].item() == pytest.approx(v_w1 / rc, rel=1e-12)
    # driver 1 at 1 V: w1 through rr + 1/g1; loads rc (TIA) and rc + 1/g0 + rr (up the column to driver 0)
    load = par(rc, rc + 1 / g0 + rr)
    v_w1 = load / (rr + 1 / g1 + load)
    assert m[1].item() == pytest.approx(v_w1 / rc, rel=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shape", [(3, 5), (6, 2), (1, 4), (4, 1), (5, 5)])
def test_matches_dense_nodal_analysis(solver, shape):
    g = rand_g(2, *shape, seed=sum(shape))
    for rr, rc in [(2.0, 3.0), (40.0, 15.0)]:
        m = transfer_conductance(g, rr, rc, solver=solver)
        ref = torch.stack([dense_reference(x, rr, rc) for x in g])
        assert rel(m, ref) < 1e-12


@pytest.mark.parametrize("solver", SOLVERS)
def test_zero_resistance_on_one_wire_kind_is_the_limit(solver):
    g = rand_g(2, 5, 4, seed=3)
    for rr, rc in [(0.0, 2.0), (2.0, 0.0)]:
        m = transfer_conductance(g, rr, rc, solver=solver)
        lim = torch.stack([dense_reference(x, rr or 1e-9, rc or 1e-9) for x in g])
        assert rel(m, lim) < 1e-7
    assert torch.equal(transfer_conductance(g, 0.0, 0.0), g)


def test_block_and_sparse_agree_on_a_larger_tile():
    g = rand_g(2, 24, 40, seed=5)
    a = transfer_conductance(g, 1.5, 2.5, solver="block")
    b = transfer_conductance(g, 1.5, 2.5, solver="sparse")
    assert rel(a, b) < 1e-11
    # memory chunking gives the same result
    c = transfer_conductance(g, 1.5, 2.5, solver="block", max_values=10)
    assert rel(c, a) < 1e-13


def test_ir_drop_only_loses_current():
    """With every driver at 1 V each cell sees at most 1 V, so the total current falls below ΣG and
    falls further as the wires get more resistive."""
    g = rand_g(16, 16, seed=9)
    tot = [float(transfer_conductance(g, r, r).sum()) for r in (0.0, 0.5, 2.0, 5.0)]
    assert tot[0] == pytest.approx(float(g.sum()))
    assert tot[0] > tot[1] > tot[2] > tot[3] > 0


def test_dtype_device_and_bad_input():
    g = rand_g(3, 4, seed=1)
    m32 = transfer_conductance(g.float(), 1.0, 1.0)
    assert m32.dtype == torch.float32
    assert rel(m32.double(), transfer_conductance(g, 1.0, 1.0)) < 1e-6
    with pytest.raises(ValueError, match="negative conductance"):
        transfer_conductance(-g, 1.0, 1.0)
    with pytest.raises(ConfigError, match="r_row"):
        transfer_conductance(g, -1.0, 1.0)
    with pytest.raises(ConfigError, match="solver"):
        transfer_conductance(g, 1.0, 1.0, solver="magic")


def test_line_resistance_config_validation():
    cfg = from_dict(CrossbarConfig, {"line_resistance": {"r_row": 1, "r_col": 2.5}})
    assert cfg.line_resistance == LineResistance(1.0, 2.5)
    with pytest.raises(ConfigError, match="line_resistance.r_col"):
        from_dict(CrossbarConfig, {"line_resistance": {"r_col": -1}})
    with pytest.raises(ConfigError, match="partial_tiles"):
        LineResistance(partial_tiles="crop")
    # core fix: errors inside an Optional[dataclass] used to be replaced by "does not match any of ..."
    with pytest.raises(ConfigError, match=r"read_noise\.sigma=-1"):
        from_dict(CrossbarConfig, {"read_noise": {"sigma": -1}})


# ---------------------------------------------------------------------------------------------- crossbar
def _xb(scheme="differential", tile=None, lr=None, trials=2, w=None):
    w = w if w is not None else torch.randn(20, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cfg = CrossbarConfig(mapping=mapping_from_spec(scheme), tile=tile, line_resistance=lr)
    return Crossbar.from_weights(w, config=cfg, trials=trials, seed=1)


def test_ideal_path_unchanged():
    x = torch.rand(5, 20, dtype=torch.float64)
    ideal = _xb().matmul(x)
    assert torch.equal(_xb(lr=LineResistance(0.0, 0.0)).matmul(x), ideal)
    w = torch.randn(20, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.allclose(ideal, (x @ w).expand(2, -1, -1), rtol=1e-10, atol=1e-10)


def test_mvm_uses_the_per_tile_networks_assembled_by_hand():
    """Two row tiles × two column tiles (differential, interleaved pairs): the read equals the sum over
    row tiles of v_tile · (M[:, 2o] − M[:, 2o+1]) with M solved per physical tile."""
    tile = Tiling(10, 8)  # 10 rows, 4 weights per tile
    lr = LineResistance(2.0, 3.0)
    xb = _xb(tile=tile, lr=lr)
    v = 0.2 * torch.rand(3, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = xb.mvm(v)  # (T, 3, 7)
    gp, gn = xb.g_pos, xb.g_neg
    expect = torch.zeros(2, 3, 7, dtype=torch.float64)
    for rt in range(2):
        for ct in range(2):
            cols = list(range(4 * ct, min(7, 4 * ct + 4)))
            phys = torch.zeros(2, 10, 8, dtype=torch.float64)  # padded tile: unused cells empty
            for k, o in enumerate(cols):
                phys[:, :, 2 * k] = gp[:, 10 * rt : 10 * rt + 10, o]
                phys[:, :, 2 * k + 1] = gn[:, 10 * rt : 10 * rt + 10, o]
            m = torch.stack([dense_reference(p, 2.0, 3.0) for p in phys])
            d = m[:, :, 0::2] - m[:, :, 1::2]
            expect[:, :, cols] += v[None, :, 10 * rt : 10 * rt + 10] @ d[:, :, : len(cols)]
    assert rel(out, expect * xb.config.r_s) < 1e-11


def test_reference_scheme_and_partial_tile_modes():
    w = torch.randn(12, 5, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    x = torch.rand(4, 12, dtype=torch.float64)
    tile = Tiling(8, 4)  # 3 weights + a reference column per tile; last row tile holds 4 of 8 rows
    pad = _xb("reference", tile, LineResistance(2.0, 2.0, partial_tiles="pad"), w=w).matmul(x)
    trim = _xb("reference", tile, LineResistance(2.0, 2.0, partial_tiles="trim"), w=w).matmul(x)
    ideal = _xb("reference", tile, None, w=w).matmul(x)
    assert rel(pad, ideal) > 1e-3 and rel(trim, ideal) > 1e-3
    assert rel(pad, trim) > 1e-6  # the padded tile's longer wires matter
    # a tiling that fills its tiles exactly: pad and trim are the same network
    full = Tiling(6, 6)  # 12 rows -> 2 full row tiles; 5 weights per tile -> 1 column tile (exactly 5)
    a = _xb("reference", full, LineResistance(2.0, 2.0, partial_tiles="pad"), w=w).matmul(x)
    b = _xb("reference", full, LineResistance(2.0, 2.0, partial_tiles="trim"), w=w).matmul(x)
    assert rel(a, b) < 1e-12


def test_effective_matrix_tracks_conductances_and_settings():
    xb = _xb(lr=LineResistance(1.0, 1.0))
    x = torch.rand(3, 20, dtype=torch.float64)
    y1 = xb.matmul(x)
    xb.program(torch.randn(20, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(99)))
    y2 = xb.matmul(x)
    assert rel(y1, y2) > 1e-3
    with torch.no_grad():
        xb.g_pos.mul_(1.1)  # in-place edit: the cache must notice
    y3 = xb.matmul(x)
    assert rel(y3, y2) > 1e-3
    xb.config.line_resistance = LineResistance(3.0, 3.0)
    y4 = xb.matmul(x)
    assert rel(y4, y3) > 1e-3
    direct = effective_g_diff(xb.g_pos, xb.g_neg, "differential", None, LineResistance(3.0, 3.0))
    assert rel(xb.mvm(0.2 * x), 0.2 * xb.config.r_s * x @ direct) < 1e-12


def test_per_tile_adc_with_line_resistance():
    tile = Tiling(10, 8)
    xb = _xb(tile=tile, lr=LineResistance(1.0, 1.0))
    xb_adc = _xb(tile=tile, lr=LineResistance(1.0, 1.0))
    xb_adc.config.adc = Converter(bits=12)
    x = torch.rand(6, 20, dtype=torch.float64)
    a, b = xb.matmul(x), xb_adc.matmul(x)
    assert rel(a, b) < 1e-2 and not torch.equal(a, b)


def test_converted_model_save_load_with_line_resistance():
    from memristive.nn import convert, mlp

    torch.manual_seed(0)
    model = mlp([20, 8, 3])
    cfg = CrossbarConfig(tile=Tiling(8, 8), line_resistance=LineResistance(1.0, 2.0))
    hw = convert(model, cfg, trials=2, seed=3)
    x = torch.rand(4, 20)
    y = hw(x)
    buf = io.BytesIO()
    torch.save(hw.state_dict(), buf)
    hw2 = convert(model, cfg, trials=2, seed=4)  # different devices ... until the state is loaded
    buf.seek(0)
    hw2.load_state_dict(torch.load(buf))
    assert torch.allclose(hw2(x), y, rtol=1e-6, atol=1e-7)
    buf = io.BytesIO()
    torch.save(hw, buf)  # the whole module pickles (the cache is dropped)
    buf.seek(0)
    hw3 = torch.load(buf, weights_only=False)
    assert torch.allclose(hw3(x), y, rtol=1e-6, atol=1e-7)


def test_geometry_counts_match_the_crossbar():
    xb = _xb(tile=Tiling(8, 6))
    geo = geometry(20, 7, "differential", Tiling(8, 6))
    c = xb.counts()
    assert (geo.row_tiles, geo.col_tiles) == (c["row_tiles"], c["col_tiles"])
    assert geo.row_tiles * geo.col_tiles == c["tiles"] and geo.weights == 3


# ---------------------------------------------------------------------------------------------- experiment
def test_ir_drop_quick_smoke(tmp_path):
    import json

    from memristive.experiments.runner import run_experiment

    results, run = run_experiment("ir-drop", out=tmp_path / "ir", quick=True)
    assert "energy_per_inference_j" in results["hardware_cost"], results["hardware_cost"]  # the run's cost
    pts = results["metrics"]["points"]
    assert [(p["tile_size"], p["wire_ohm"]) for p in pts] == [(32, 0.0), (32, 2.0)]
    assert pts[0]["layer1_rel_error"] == 0.0 and pts[1]["layer1_rel_error"] > 0.01
    assert all(0 <= p["mean"] <= 100 for p in pts)
    assert pts[1]["solve_s"] > 0 and pts[1]["tiles_layer1"] == 25 * 7
    assert (run.path / "accuracy_vs_wire_resistance.png").stat().st_size > 1000
    assert (run.path / "costs.csv").read_text().startswith("tile_size,wire_ohm")
    assert json.loads((run.path / "results.json").read_text())["experiment"] == "ir-drop"
    assert math.isfinite(results["metrics"]["software_accuracy"])
