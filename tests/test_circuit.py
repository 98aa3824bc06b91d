"""SPICE netlist export and the simulator against ngspice."""

import re

import pytest
import torch

from memristive.circuit import (CircuitError, LineResistance, crossbar_netlist, find_ngspice, run_ngspice,
                                simulate_crossbar, simulate_tile, tia_outputs, tile_netlist, write_netlist)
from memristive.circuit.layout import geometry
from memristive.crossbar import Crossbar, CrossbarConfig, Mapping, ReferenceColumn, Tiling

needs_ngspice = pytest.mark.skipif(
    find_ngspice() is None,
    reason="ngspice is not installed (Debian package 'ngspice'; `make system-deps` installs it)")


def rand_tile(R, C, seed):
    gen = torch.Generator().manual_seed(seed)
    g = 1.0 / (1e3 + 11e3 * torch.rand(R, C, generator=gen, dtype=torch.float64))  # 1–12 kΩ
    v = 0.2 * torch.rand(R, generator=gen, dtype=torch.float64)
    return g, v


def elements(text):
    return [ln for ln in text.splitlines() if ln and ln[0] not in "*." and not ln.startswith(("set ", "op", "print", "quit"))]


# ---------------------------------------------------------------------------------------------- netlists
def test_netlist_elements_and_values():
    g = torch.tensor([[1e-3, 0.0], [2e-4, 5e-4]], dtype=torch.float64)
    net = tile_netlist(g, torch.tensor([0.1, 0.2], dtype=torch.float64), r_s=1500.0, r_row=2.0, r_col=3.0, opamp_gain=1e8)
    el = elements(net.text)
    kinds = {}
    for ln in el:
        kinds[re.match(r"[A-Z]+", ln).group()] = kinds.get(re.match(r"[A-Z]+", ln).group(), 0) + 1
    # 2 drivers, 2×2 row segments, 3 cells (G = 0 is no device), 2×2 column segments, 2 TIAs
    assert kinds == {"V": 2, "RR": 4, "RC": 3, "RW": 4, "RF": 2, "E": 2}
    assert "V1 in1 0 DC 0.2" in el
    assert "RC0_0 r0_0 c0_0 1000.0" in el and "RC1_0 r1_0 c1_0 5000.0" in el
    assert "RR0_0 in0 r0_0 2.0" in el and "RR0_1 r0_0 r0_1 2.0" in el
    assert "RW0_1 c0_1 c1_1 3.0" in el and "RW1_1 c1_1 n1 3.0" in el
    assert "RF1 out1 n1 1500.0" in el and "E1 out1 0 0 n1 100000000.0" in el
    assert net.output_nodes == ["out0", "out1"] and net.text.rstrip().endswith(".end")


def test_netlist_without_wires_joins_cells_to_drivers_and_tias():
    g = torch.tensor([[1e-3, 2e-3]], dtype=torch.float64)
    el = elements(tile_netlist(g, torch.tensor([0.3])).text)
    assert "RC0_0 in0 n0 1000.0" in el and "RC0_1 in0 n1 500.0" in el
    assert not any(ln.startswith(("RR", "RW")) for ln in el)


def test_netlist_rejects_bad_input():
    g = torch.full((2, 2), 1e-3)
    with pytest.raises(ValueError, match="2 rows"):
        tile_netlist(g, torch.ones(3))
    with pytest.raises(ValueError, match="negative conductance"):
        tile_netlist(-g, torch.ones(2))
    with pytest.raises(ValueError, match="finite"):
        tile_netlist(g, torch.tensor([1.0, float("nan")]))


def test_crossbar_netlist_picks_the_tile(tmp_path):
    w = torch.randn(10, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xb = Crossbar.from_weights(w, config=CrossbarConfig(tile=Tiling(4, 4), line_resistance=LineResistance(1.0, 2.0)),
                               trials=3, seed=0)
    v = torch.linspace(0.0, 0.2, 10, dtype=torch.float64)
    net = crossbar_netlist(xb, v, trial=2, tile=(2, 1))  # last row tile: rows 8, 9 (+2 padded at 0 V)
    assert net.meta["rows_map"] == [8, 9, -1, -1]
    assert net.outputs == [(2, 0, 1), (3, 2, 3)]  # weights 2, 3 as interleaved pairs
    el = elements(net.text)
    assert f"V0 in0 0 DC {float(v[8])!r}" in el and "V2 in2 0 DC 0.0" in el
    assert f"RC0_1 r0_1 c0_1 {1 / float(xb.g_neg[2, 8, 2])!r}" in el  # G− of weight 2 on row 8, trial 2
    assert "RR0_0 in0 r0_0 1.0" in el and "RW3_0 c3_0 n0 2.0" in el
    path = tmp_path / "t.cir"
    write_netlist(path, xb, v, trial=2, tile=(2, 1))
    assert path.read_text() == net.text
    with pytest.raises(ValueError, match="tile"):
        crossbar_netlist(xb, v, tile=(3, 0))
    with pytest.raises(ValueError, match="trial"):
        crossbar_netlist(xb, v, trial=3)


def test_missing_ngspice_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMRISTIVE_NGSPICE", str(tmp_path / "no-such-ngspice"))
    g, v = rand_tile(2, 2, 0)
    with pytest.raises(CircuitError, match="install the Debian package 'ngspice'"):
        simulate_tile(g, v)


# ---------------------------------------------------------------------------------------------- ngspice
@needs_ngspice
@pytest.mark.parametrize("shape", [(16, 8), (64, 32)])
def test_ideal_mvm_matches_ngspice(shape):
    R, C = shape
    g, v = rand_tile(R, C, seed=R)
    spice = simulate_tile(g, v, r_s=1e3)
    sim = tia_outputs(g, v[None], 1e3)[0]  # −R_s·v·G: the crossbar's ideal read, per physical column
    assert float(((sim - spice).abs() / spice.abs()).max()) <= 1e-4
    # the same through Crossbar.mvm (differential weights): 16×8 weights -> 16×16 cells
    w = torch.randn(R, C // 2, generator=torch.Generator().manual_seed(C), dtype=torch.float64)
    xb = Crossbar.from_weights(w, trials=1, seed=0)
    res = simulate_crossbar(xb, v)
    out = xb.mvm(v[None])[0, 0]
    assert float((out - res["outputs"]).abs().max() / res["outputs"].abs().max()) <= 1e-4


@needs_ngspice
@pytest.mark.parametrize("shape,r_row,r_col", [((16, 8), 1.0, 5.0), ((64, 32), 2.5, 2.5), ((64, 32), 5.0, 1.0)])
def test_ir_drop_matches_ngspice(shape, r_row, r_col):
    R, C = shape
    g, v = rand_tile(R, C, seed=R + C)
    spice = simulate_tile(g, v, r_s=1e3, r_row=r_row, r_col=r_col)
    sim = tia_outputs(g, v[None], 1e3, r_row, r_col)[0]
    assert float(((sim - spice).abs() / spice.abs()).max()) <= 1e-3
    ideal = tia_outputs(g, v[None], 1e3)[0]
    assert float(((ideal - spice).abs() / spice.abs()).max()) > 1e-2  # the wires matter at this size


@needs_ngspice
def test_tiled_reference_crossbar_matches_ngspice_tile_by_tile():
    w = torch.randn(20, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    cfg = CrossbarConfig(mapping=ReferenceColumn(), tile=Tiling(8, 6), line_resistance=LineResistance(2.0, 3.0))
    xb = Crossbar.from_weights(w, config=cfg, trials=2, seed=1)
    v = 0.2 * torch.rand(20, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    geo = geometry(20, 7, "reference", cfg.tile)
    total = torch.zeros(7, dtype=torch.float64)
    for rt in range(geo.row_tiles):
        for ct in range(geo.col_tiles):
            res = simulate_crossbar(xb, v, trial=1, tile=(rt, ct))
            total[res["output_index"]] += res["outputs"]  # partial sums of the row tiles add up
    out = xb.mvm(v[None])[1, 0]
    assert float((out - total).abs().max() / total.abs().max()) <= 1e-3


@needs_ngspice
def test_ngspice_errors_are_reported():
    # a node hanging off one resistor: ngspice still prints a number after gmin stepping; we refuse it
    with pytest.raises(CircuitError, match="singular matrix|gmin"):
        run_ngspice("broken\nR1 a\n.control\nop\nprint v(a)\nquit 0\n.endc\n.end\n")


@needs_ngspice
def test_check_tool(tmp_path, capsys):
    from memristive.circuit.__main__ import main

    assert main(["--rows", "6", "--cols", "4", "--r-row", "1", "--r-col", "3", "--netlist", str(tmp_path / "t.cir")]) == 0
    out = capsys.readouterr().out
    err = float(out.split("simulator (wires)")[1].split("ngspice")[1].split()[0])
    assert err <= 1e-6 and (tmp_path / "t.cir").read_text().startswith("* memristive crossbar tile")
