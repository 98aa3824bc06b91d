"""Whole-model conversion: trial convention (ResNet block), report, per-layer configs, state round trip."""

import io

import pytest
import torch
from torch import nn

from memristive.crossbar import Converter, CrossbarConfig, Tiling
from memristive.nn import (CrossbarConv2d, CrossbarGRU, CrossbarLinear, CrossbarLSTM, CrossbarRNN, TrialFold,
                           convert, program, register_converter)
from memristive.nn.base import CONVERTERS, find_converter, layer_seed
from memristive.nonideal import StuckAt
from memristive.nonideal import DeviceVariation


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block (with a strided 1×1 projection shortcut)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.down(x))


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(BasicBlock(3, 4, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(4),
                        nn.Dropout(0.5), nn.Linear(4, 3)).double()
    for m in net.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def test_resnet_block_trials_ideal_equals_torch():
    net = _net()
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    hw = convert(net, trials=3, seed=0)
    y = hw(x)
    assert y.shape == (3, 5, 3)
    assert torch.allclose(y, net(x).expand(3, -1, -1), atol=1e-10)


def test_resnet_block_trials_are_their_own_devices():
    """Trial t of the converted block == the torch block with trial t's effective weights."""
    net = _net()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    hw = convert(net, CrossbarConfig(nonidealities=[DeviceVariation(0.2)]), trials=3, seed=1)
    y = hw(x)
    for t in range(3):
        ref = _net()
        for name, mod in hw.named_modules():
            if isinstance(mod, CrossbarConv2d):
                w = mod.crossbar.weights()[t].t().reshape(mod.weight.shape)
                ref.get_submodule(name).weight.data.copy_(w)
            elif isinstance(mod, CrossbarLinear):
                ref.get_submodule(name).weight.data.copy_(mod.crossbar.weights()[t].t())
        assert torch.allclose(y[t], ref(x), atol=1e-10)
    assert (y[0] - y[1]).abs().max() > 1e-3


def test_trial_fold_batchnorm1d_after_linear():
    """The issue's crash: BatchNorm1d after a converted Linear with trials."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).eval()
    hw = convert(net, trials=5)
    assert isinstance(hw[1], TrialFold)
    x = torch.randn(7, 6)
    assert torch.allclose(hw(x), net(x).expand(5, -1, -1), atol=1e-5)


def test_embedding_lstm_model_and_digital_output_expanded():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 5)
            self.lstm = nn.LSTM(5, 6, batch_first=True)
            self.out = nn.Linear(6, 3)

        def forward(self, tokens):
            h, _ = self.lstm(self.emb(tokens))
            return self.out(h)

    torch.manual_seed(0)
    m = Tagger().double().eval()
    tokens = torch.randint(0, 10, (2, 7))
    hw, rep = convert(m, trials=2, report=True)
    assert torch.allclose(hw(tokens), m(tokens).expand(2, -1, -1, -1), atol=1e-10)
    assert [r["name"] for r in rep.digital] == ["emb"]
    # everything digital: still (T, B, ...)
    dig = convert(m, trials=3, layer_configs={nn.LSTM: None, "out": None})
    assert torch.allclose(dig(tokens), m(tokens).expand(3, -1, -1, -1), atol=1e-12)


class Everything(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 3, 3)
        self.c2 = nn.Conv2d(2, 3, 3)
        self.c3 = nn.Conv3d(2, 3, 3)  # no converter
        self.rnn = nn.RNN(3, 4)
        self.lstm = nn.LSTM(3, 4)
        self.gru = nn.GRU(3, 4)
        self.fc = nn.Linear(4, 2)
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(torch.ones(1))  # used by its own forward


def test_report_lists_every_layer_and_no_supported_layer_stays_digital():
    hw, rep = convert(Everything(), CrossbarConfig(tile=Tiling(8, 8)), report=True)
    supported = {n for n, m in Everything().named_modules() if find_converter(m) is not None}
    assert {r["name"] for r in rep.crossbar} == supported == {"c1", "c2", "rnn", "lstm", "gru", "fc"}
    assert not supported & {r["name"] for r in rep.digital}
    digital = {r["name"]: r["reason"] for r in rep.digital}
    assert set(digital) == {"", "c3", "bn"} and "no converter for Conv3d" in digital["c3"]
    fc = next(r for r in rep.crossbar if r["name"] == "fc")
    assert (fc["rows"], fc["cols"], fc["cells"], fc["tiles"]) == (4, 4, 16, 1)
    c2 = next(r for r in rep.crossbar if r["name"] == "c2")  # 2·3·3 = 18 rows, 3 weights → 6 cols; 3 row tiles
    assert (c2["rows"], c2["cols"], c2["tiles"]) == (18, 6, 3)
    gru = next(r for r in rep.crossbar if r["name"] == "gru")  # fused [x; h; 1] → 4h
    assert (gru["rows"], gru["cols"]) == (3 + 4 + 1, 2 * 16)
    assert "Conv3d" in str(rep) and rep.cells == sum(r["cells"] for r in rep.crossbar)
    assert isinstance(hw.c1, type(hw.c2).__mro__[1]) and isinstance(hw.rnn, CrossbarRNN)
    assert isinstance(hw.lstm, CrossbarLSTM) and isinstance(hw.gru, CrossbarGRU)


def test_layer_configs_by_name_and_type_and_seeds():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2))
    adc = CrossbarConfig(adc=Converter(bits=4))
    hw, rep = convert(net, CrossbarConfig(), trials=2, seed=7, report=True,
                      layer_configs={"0": None, nn.Linear: adc, "4": CrossbarConfig(tile=Tiling(4, 4))})
    assert isinstance(hw[0], TrialFold) and hw[2].crossbar.config.adc.bits == 4
    assert hw[4].crossbar.config.adc.bits is None and hw[4].crossbar.config.tile.rows == 4
    assert [r["config"] for r in rep.crossbar] == ["layer_configs[Linear]", "layer_configs['4']"]
    # the seed rule: the i-th array gets seed + 1000·i
    assert hw[2].crossbar.seed == layer_seed(7, 0) == 7 and hw[4].crossbar.seed == 1007
    with pytest.raises(TypeError, match="CrossbarConfig or None"):
        convert(net, layer_configs={"0": "digital"})
    with pytest.raises(ValueError, match="no module named"):
        convert(net, layer_configs={"x.y": None})


def test_register_converter_extends_the_map():
    class Twice(nn.Linear):
        pass

    calls = []

    @register_converter(Twice)
    def _twice(module, config, trials, seed):
        calls.append(seed)
        return CrossbarLinear.from_linear(module, config, trials=trials, seed=seed)

    try:
        hw, rep = convert(nn.Sequential(nn.Linear(3, 3), Twice(3, 2)), seed=5, report=True)
        assert calls == [1005] and isinstance(hw[1], CrossbarLinear)
    finally:
        CONVERTERS.pop(Twice)


def _core_state_self_contained() -> bool:
    """The array core keeps the mapping scale in the state dict (issue 10, landing on main)."""
    from memristive.crossbar import Crossbar

    return "scale" in dict(Crossbar.from_weights(torch.ones(1, 1)).named_buffers())


def test_state_dict_round_trip_same_weights_other_devices():
    """The layers' own state (trainable weights, scales, conductances) restores another seed's devices."""
    net = _net()
    cfg = CrossbarConfig(nonidealities=[DeviceVariation(0.1), StuckAt(p_hrs=0.02)])
    hw = convert(net, cfg, trials=3, seed=1)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    buf = io.BytesIO()
    torch.save(hw.state_dict(), buf)
    skel = convert(net, cfg, trials=3, seed=99)
    assert not torch.equal(skel(x), hw(x))
    buf.seek(0)
    skel.load_state_dict(torch.load(buf))
    assert torch.equal(skel(x), hw(x))


@pytest.mark.xfail(not _core_state_self_contained(), reason="needs the self-contained Crossbar state of issue 10",
                   strict=True)
def test_state_dict_round_trip_into_fresh_skeleton():
    """torch.save/torch.load (weights_only default) + load_state_dict into a skeleton converted from a
    differently initialised model with another seed reproduce the outputs exactly."""
    net = _net()
    cfg = CrossbarConfig(nonidealities=[DeviceVariation(0.1), StuckAt(p_hrs=0.02)])
    hw = convert(net, cfg, trials=3, seed=1)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    y = hw(x)
    buf = io.BytesIO()
    torch.save(hw.state_dict(), buf)
    torch.manual_seed(123)
    other = _net()
    for p in other.parameters():
        p.data.normal_()
    skel = convert(other, cfg, trials=3, seed=99)
    buf.seek(0)
    skel.load_state_dict(torch.load(buf))
    assert torch.equal(skel(x), y)


def test_hardware_aware_training_mode_and_program():
    """In training mode the forward programs the trainable weights onto fresh devices each step;
    ideal devices: the training forward and its gradients equal the torch model's."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4)).double()
    x = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    hw = convert(net, trials=1).train()
    out = hw(x)
    assert out.shape == (1, 5, 4) and len(list(hw.parameters())) == 4
    out.sum().backward()
    net(x).sum().backward()
    for (n, p), q in zip(hw.named_parameters(), net.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), n
    # with variation: two training steps draw different devices; eval reads the programmed array
    noisy = convert(net, CrossbarConfig(nonidealities=[DeviceVariation(0.2)]), trials=2, seed=3).train()
    a, b = noisy(x), noisy(x)
    assert not torch.allclose(a, b)
    noisy.eval()
    assert torch.equal(noisy(x), noisy(x))
    # program the (changed) weights onto 4 fresh instances
    with torch.no_grad():
        noisy[3].weight.mul_(2)
    program(noisy, CrossbarConfig(), trials=4, seed=0)
    assert noisy(x).shape == (4, 5, 4)
    ref = net[3].weight.detach() * 2
    assert torch.allclose(noisy[3].crossbar.weights()[0], ref.t(), atol=1e-12)


@pytest.mark.parametrize("make", [lambda: nn.GRU(3, 4, batch_first=True), lambda: nn.Conv1d(3, 4, 2),
                                  lambda: nn.LSTM(3, 4, batch_first=True)])
def test_convert_a_single_layer_and_reprogram(make):
    torch.manual_seed(0)
    layer = make().double()
    x = torch.randn(2, 3, 5, dtype=torch.float64) if isinstance(layer, nn.Conv1d) else torch.randn(2, 5, 3, dtype=torch.float64)
    hw = convert(layer, trials=2)
    ref = layer(x)
    out = hw(x)
    out, ref = (out[0], ref[0]) if isinstance(out, tuple) else (out, ref)
    assert torch.allclose(out, ref.expand_as(out), atol=1e-12)
    program(hw, CrossbarConfig(nonidealities=[DeviceVariation(0.1)]), trials=3, seed=1)
    out3 = hw(x)
    assert (out3[0] if isinstance(out3, tuple) else out3).shape[0] == 3
