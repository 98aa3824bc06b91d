"""Hardware cost arithmetic: storage, compression, cells, tiles; the paper's figures."""

import pytest
import torch

from memristive.crossbar import CrossbarConfig, Mapping, ReferenceColumn, Tiling
from memristive.hardware import compression, cost_table, hardware_cost, model_arrays, storage_bytes
from memristive.nn import CrossbarGRUNet, GRUNet, convert, mlp


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny recurrent ops: one thread (OpenMP spin-waits collapse on a busy shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_storage_and_compression_arithmetic():
    assert storage_bytes(1000, 32) == 4000
    assert storage_bytes(1000, 6) == 750
    assert compression(6) == pytest.approx(0.8125)
    assert compression(8) == 0.75
    with pytest.raises(ValueError):
        storage_bytes(10, 0)


def test_paper_figures_from_the_paper_sized_gru():
    """~1.40 M weights -> 5.6 MB (32 bit), 1.05 MB (6 bit), 2.8 M cells (differential 1T1R pairs)."""
    torch.manual_seed(0)
    net = GRUNet(20, 256, 4, 10, layout="split")
    cost = hardware_cost(net, bits=[32, 6])
    assert cost["parameters"] == 1_400_330  # 3·(20·256 + 256² + 512) + 3·3·(256·256 + 256² + 512) + 2570
    mb = {s["bits"]: s["MB"] for s in cost["storage"]}
    assert mb[32] == pytest.approx(5.60132)
    assert mb[6] == pytest.approx(1.0502475)
    assert round(mb[32], 1) == 5.6 and round(mb[6], 2) == 1.05
    assert cost["cells"] == 2 * 1_400_330
    assert cost["storage"][1]["compression"] == pytest.approx(0.8125)


def test_converted_model_counts_match_software_and_hand_counts():
    torch.manual_seed(0)
    net = GRUNet(3, 4, 2, 2, layout="fused")
    hw = CrossbarGRUNet.from_net(net, CrossbarConfig(tile=Tiling(8, 8)))
    c_sw = hardware_cost(net, bits=[8], tile=Tiling(8, 8))
    c_hw = hardware_cost(hw, bits=[8])
    # fused layer 0: (3 + 4 + 1) × 16; layer 1: (4 + 4 + 1) × 16; head (4 + 1) × 2
    assert c_hw["array_weights"] == 8 * 16 + 9 * 16 + 5 * 2
    # parameters: fused bias row holds 4h values (b_ir+b_hr, b_iz+b_hz, b_in, b_hn)
    assert c_hw["parameters"] == (3 * 4 * 7 + 16) + (3 * 4 * 8 + 16) + 10
    assert c_hw["cells"] == 2 * c_hw["array_weights"]
    # tiles of 8 rows × 4 weight columns: layer 0: 1 × 4; layer 1: 2 × 4; head: 1 × 1
    assert c_hw["tiles"] == 4 + 8 + 1
    for k in ("parameters", "array_weights", "cells", "tiles"):
        assert c_sw[k] == c_hw[k]


def test_reference_scheme_cells_and_plain_crossbar_layers():
    model = mlp([10, 6, 3])
    hw = convert(model, CrossbarConfig(mapping=ReferenceColumn(), tile=Tiling(4, 4)))
    cost = hardware_cost(hw, bits=[4])
    # layer 1: 10 rows, 6 weight cols, 3 per tile (one reference col) -> 2 col tiles; 8 cols; 3 row tiles
    # layer 2: 6 rows, 3 cols -> 1 col tile, 4 cols; 2 row tiles
    assert cost["cells"] == 10 * 8 + 6 * 4
    assert cost["tiles"] == 3 * 2 + 2 * 1
    assert cost["parameters"] == 10 * 6 + 6 * 3
    assert "| 4 |" in cost_table(cost)


def test_model_without_layers_is_an_error():
    with pytest.raises(ValueError, match="no crossbar arrays"):
        model_arrays(torch.nn.ReLU())


def test_hardware_cost_experiment_quick(tmp_path):
    from memristive.experiments import run_experiment

    res, _ = run_experiment("hardware-cost", out=tmp_path / "hw", quick=True)
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    lay = res["metrics"]["layouts"]["split"]
    assert lay["parameters"] == 3 * (20 * 32 + 32 * 32 + 64) + 3 * (32 * 32 + 32 * 32 + 64) + 330
    assert (tmp_path / "hw" / "results.csv").is_file()
