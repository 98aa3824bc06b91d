"""CrossbarGRU: equivalence with torch.nn.GRU, layout, quantization, variation, QAT pipeline."""

import io

import pytest
import torch

from memristive.crossbar import Converter, CrossbarConfig
from memristive.methods.qat import SequenceTask, TrainConfig, evaluate, evaluate_crossbar, fp_then_qat, task_metric
from memristive.nn import CrossbarGRU, CrossbarGRUNet, GRUNet, QuantGRU, convert_gru
from memristive.nn.gru import gru_matrices, gru_param_count
from memristive.nonideal import ReadNoise
from memristive.quant import QuantConfig, WeightNoise


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny recurrent ops: one thread (OpenMP spin-waits collapse on a busy shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _gru(n_in=5, h=7, layers=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.GRU(n_in, h, num_layers=layers, batch_first=True).double()


@pytest.mark.parametrize("layout", ["fused", "split"])
def test_ideal_crossbar_gru_equals_torch_gru(layout):
    g = _gru()
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    h0 = torch.randn(2, 4, 7, dtype=torch.float64)
    ref, ref_h = g(x, h0)
    xg = CrossbarGRU.from_gru(g, trials=3, layout=layout)
    out, h_n = xg(x, h0)
    assert out.shape == (3, 4, 9, 7) and h_n.shape == (3, 2, 4, 7)
    assert torch.allclose(out, ref.expand(3, -1, -1, -1), atol=1e-12)
    assert torch.allclose(h_n, ref_h.expand(3, -1, -1, -1), atol=1e-12)
    # per-trial inputs (T, B, L, in) give the same answer
    out2, _ = xg(x.expand(3, -1, -1, -1))
    assert torch.allclose(out2, g(x)[0].expand(3, -1, -1, -1), atol=1e-12)


def test_stepwise_path_equals_fast_path():
    """With a near-ideal 16-bit ADC every step goes through Crossbar.matmul; it must agree."""
    g = _gru(layers=1)
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    for layout in ("fused", "split"):
        xg = CrossbarGRU.from_gru(g, CrossbarConfig(adc=Converter(bits=16)), trials=2, layout=layout)
        assert not all(m.linear for m in xg.matrices())
        out, _ = xg(x)
        assert torch.allclose(out, g(x)[0].expand(2, -1, -1, -1), atol=1e-3)


def test_fused_layout_hand_check():
    g = _gru(n_in=2, h=3, layers=1)
    (m,) = gru_matrices(g, 0, "fused").values()
    w_ih, w_hh, b_ih, b_hh = g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0
    assert m.shape == (2 + 3 + 1, 4 * 3)
    assert torch.equal(m[:2, 0:3], w_ih[0:3].t())  # x -> r
    assert torch.equal(m[2:5, 3:6], w_hh[3:6].t())  # h -> z
    assert torch.equal(m[:2, 6:9], w_ih[6:9].t())  # x -> n_x
    assert torch.equal(m[2:5, 6:9], torch.zeros(3, 3, dtype=m.dtype))  # h does not feed n_x
    assert torch.equal(m[:2, 9:12], torch.zeros(2, 3, dtype=m.dtype))  # x does not feed n_h
    assert torch.equal(m[2:5, 9:12], w_hh[6:9].t())
    assert torch.allclose(m[5], torch.cat([b_ih[:6] + b_hh[:6], b_ih[6:], b_hh[6:]]))
    split = gru_matrices(g, 0, "split")
    assert split["x1"].shape == (3, 9) and split["h1"].shape == (4, 9)
    assert gru_param_count(20, 256, 4, 10) == 1_400_330  # the paper-sized network


def test_quantgru_plain_is_nn_gru_and_quantized_matches_crossbar():
    g = _gru()
    x = torch.randn(4, 8, 5, dtype=torch.float64)
    q = QuantGRU.from_gru(g)
    assert torch.equal(q(x)[0], g(x)[0])
    q.set_quant(QuantConfig(weight_bits=4))
    q.train()
    q(x)  # observe activation ranges
    q.eval()
    soft, _ = q(x)
    assert not torch.allclose(soft, g(x)[0], atol=1e-3)  # 4 bits changes the answer ...
    hw, _ = CrossbarGRU.from_gru(q, trials=2)(x)
    assert torch.allclose(hw, soft.expand(2, -1, -1, -1), atol=1e-12)  # ... identically on the crossbar
    # devices hold integer codes: one-sided 8 levels (|q| <= 7) per device
    xb = CrossbarGRU.from_gru(q).matrices()[0].crossbar
    assert xb.config.memristor.levels == 8
    k = xb.k
    codes = (xb.g_pos - xb.config.memristor.g_min) / k
    assert torch.allclose(codes, codes.round(), atol=1e-6) and codes.max() <= 7 + 1e-6


def test_variation_trials_differ_and_are_seeded():
    g = _gru(layers=1)
    x = torch.randn(2, 5, 5, dtype=torch.float64)
    cfg = CrossbarConfig(nonidealities=[{"kind": "variation", "sigma": 0.1}])
    a, _ = CrossbarGRU.from_gru(g, cfg, trials=4, seed=3)(x)
    b, _ = CrossbarGRU.from_gru(g, cfg, trials=4, seed=3)(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])
    assert (a - g(x)[0]).abs().max() < 0.5


def test_read_noise_is_fresh_per_step():
    g = _gru(layers=1)
    x = torch.zeros(1, 4, 5, dtype=torch.float64)
    xg = CrossbarGRU.from_gru(g, CrossbarConfig(read_noise=ReadNoise(0.05)), trials=1)
    o1, o2 = xg(x)[0], xg(x)[0]
    assert not torch.equal(o1, o2)


def test_save_and_load_state_dict():
    torch.manual_seed(0)
    net = GRUNet(3, 8, 2, 4).set_quant(QuantConfig(weight_bits=5))
    x = torch.randn(6, 7, 3)
    net.train()
    net(x)
    net.eval()
    cfg = CrossbarConfig(nonidealities=[{"kind": "variation", "sigma": 0.05}])
    hw = CrossbarGRUNet.from_net(net, cfg, trials=3, seed=1)
    y = hw(x)
    assert y.shape == (3, 6, 4)
    buf = io.BytesIO()
    torch.save(hw, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf, weights_only=False)(x), y)
    other = CrossbarGRUNet.from_net(net, cfg, trials=3, seed=99)
    other.load_state_dict(hw.state_dict())
    assert torch.equal(other(x), y)
    # and the software QAT model round-trips too
    net2 = GRUNet(3, 8, 2, 4).set_quant(QuantConfig(weight_bits=5))
    net2.load_state_dict(net.state_dict())
    assert torch.equal(net2.eval()(x), net(x))


def test_qat_noise_training_forward():
    torch.manual_seed(0)
    net = GRUNet(3, 8, 1, 2).set_quant(QuantConfig(weight_bits=6), WeightNoise(0.2))
    x = torch.randn(5, 6, 3)
    net.train()
    a, b = net(x), net(x)
    assert not torch.equal(a, b)  # noise re-sampled each forward
    a.sum().backward()
    assert net.gru.weight_hh_l0.grad.abs().sum() > 0 and net.head.weight.grad.abs().sum() > 0
    net.eval()
    assert torch.equal(net(x), net(x))  # no noise in evaluation


def test_readout_all_and_regression_metric():
    torch.manual_seed(0)
    net = GRUNet(3, 8, 1, 1, readout="all")
    x = torch.randn(4, 6, 3)
    assert net(x).shape == (4, 6, 1)
    hw = convert_gru(net, trials=2)
    assert hw(x).shape == (2, 4, 6, 1)
    assert torch.allclose(hw(x)[0], net(x), atol=1e-5)
    y = torch.zeros(4, 6)
    task = SequenceTask(x, y, x, y, "regression", "r", readout="all", target_scale=100.0)
    out = torch.full((2, 4, 6, 1), 0.03)
    out[1] = 0.04
    assert torch.allclose(task_metric(task, out, y), torch.tensor([3.0, 4.0]))


def test_fp_then_qat_pipeline_learns_toy_task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(480, 10, 2, generator=g)
    y = (x[:, :, 0].sum(1) > 0).long()
    task = SequenceTask(x[:400], y[:400], x[400:], y[400:], "classification", "toy")
    fp, q = fp_then_qat(lambda: GRUNet(2, 12, 1, 2), task, TrainConfig(epochs=6, lr=1e-2),
                        TrainConfig(epochs=1, lr=1e-3), QuantConfig(weight_bits=6), WeightNoise(0.05), progress=False)
    acc_fp, acc_q = float(evaluate(fp, task)[0]), float(evaluate(q, task)[0])
    assert acc_fp > 0.8 and acc_q > 0.8
    acc_hw = evaluate_crossbar(q, task, trials=2)
    assert acc_hw.shape == (2,) and torch.allclose(acc_hw, torch.tensor([acc_q, acc_q]))


def test_gru_variation_quick_smoke(tmp_path):
    from memristive.experiments import run_experiment

    res, run = run_experiment("gru-variation", out=tmp_path / "v", quick=True)
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    m = res["metrics"]
    assert [r["variation"] for r in m["table"]] == [0.0, 0.14, 0.28]
    assert (tmp_path / "v" / "results.csv").is_file() and (tmp_path / "v" / "accuracy_vs_variation.png").is_file()
    # a later run can start from this run's full-precision model
    again, _ = run_experiment("gru-variation", out=tmp_path / "v2", quick=True,
                              overrides=[f"fp_from={tmp_path / 'v'}", "variations=[0.0]", "trials=1"])
    assert again["metrics"]["software"]["fp"] == m["software"]["fp"]
    assert "fp_model" not in again["timings"]


def test_fp_from_bad_path_is_a_config_error(tmp_path):
    from memristive.config import ConfigError
    from memristive.experiments.gru import GRUModelConfig, load_fp

    with pytest.raises(ConfigError, match="fp_from"):
        load_fp(str(tmp_path / "missing"), None, GRUModelConfig())


def test_qat_through_the_crossbar_equals_software_qat_on_ideal_devices():
    """quantize_finetune trains the converted model (hardware-aware path); on ideal devices it is the
    software QAT of QuantGRU to float rounding."""
    from memristive.methods.qat import quantize_finetune, train_model

    torch.manual_seed(0)
    x, y = torch.randn(64, 6, 3), torch.randint(0, 2, (64,))
    task = SequenceTask(x, y, x[:16], y[:16], "classification", num_outputs=2)
    fp = GRUNet(3, 8, 1, 2)
    quant = QuantConfig(weight_bits=6)
    cfg = TrainConfig(epochs=2, lr=5e-3, batch_size=16)
    new = quantize_finetune(fp, task, quant, None, cfg, seed=3, progress=False)
    import copy

    old = copy.deepcopy(fp).set_quant(quant, None)
    train_model(old, task, cfg, seed=3, progress=False)
    for (n, a), b in zip(new.named_parameters(), old.parameters()):
        assert torch.allclose(a, b, atol=2e-5), n
    assert not torch.equal(new.gru.weight_hh_l0, fp.gru.weight_hh_l0)  # it did train
    assert torch.allclose(new.gru.acts[0].r.observer.max_val, old.gru.acts[0].r.observer.max_val, atol=1e-5)


def test_hardware_aware_gru_training_draws_fresh_devices():
    from memristive.methods.qat import training_array

    torch.manual_seed(0)
    net = GRUNet(3, 8, 1, 2).set_quant(QuantConfig(weight_bits=6))
    hw = convert_gru(net, training_array(WeightNoise(0.2)), trials=1, seed=0).train()
    x = torch.randn(5, 6, 3)
    a, b = hw(x), hw(x)
    assert a.shape == (1, 5, 2) and not torch.equal(a, b)
    a.sum().backward()
    assert hw.gru.weight_hh_l0.grad.abs().sum() > 0 and hw.head_weight.grad.abs().sum() > 0
