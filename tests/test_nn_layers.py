"""Crossbar layers equal their torch layers when the crossbar is ideal (float64), over the options."""

import itertools

import pytest
import torch
from torch import nn

from memristive.crossbar import Converter, CrossbarConfig, Tiling
from memristive.nn import CrossbarConv1d, CrossbarConv2d, CrossbarGRU, CrossbarLinear, CrossbarLSTM, CrossbarRNN
from memristive.nonideal import StuckAt

# an ADC of 32 bits is a non-linear read (every product goes through Crossbar.matmul and its ADC),
# but resolves 2^-31 of full scale: the same numbers to ~1e-9
NEAR_IDEAL = CrossbarConfig(adc=Converter(bits=32))
TILED = CrossbarConfig(adc=Converter(bits=32), tile=Tiling(8, 8))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _check(out, ref, trials, atol):
    assert out.shape == (trials, *ref.shape)
    assert torch.allclose(out, ref.expand_as(out), atol=atol), float((out - ref).abs().max())


CONV2D_CASES = [c for c in itertools.product([1, 2], [1, 2], [0, 1, "same", "valid", (2, 1)], [1, 2], [True, False],
                                             ["zeros", "reflect", "replicate", "circular"])
                if not (c[2] == "same" and c[1] != 1)]


@pytest.mark.parametrize("groups,stride,padding,dilation,bias,mode", CONV2D_CASES)
def test_conv2d_equals_torch(groups, stride, padding, dilation, bias, mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, (3, 2), stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
                     padding_mode=mode).double()
    x = torch.randn(3, 4, 9, 8, dtype=torch.float64)
    ref = conv(x)
    layer = CrossbarConv2d.from_conv(conv, trials=2).eval()  # fast path: one grouped conv2d
    _check(layer(x), ref, 2, 1e-12)
    _check(layer(x.expand(2, *x.shape)), ref, 2, 1e-12)  # per-trial inputs
    unf = CrossbarConv2d.from_conv(conv, NEAR_IDEAL, trials=2).eval()  # im2col through Crossbar.matmul
    _check(unf(x), ref, 2, 1e-7)


def test_conv2d_tiled_unrolled_kernel():
    """A 3·3·5 = 45-row unrolled kernel on 8×8 tiles (6 row tiles, 4 weights per tile row)."""
    torch.manual_seed(1)
    conv = nn.Conv2d(5, 7, 3, padding=1).double()
    layer = CrossbarConv2d.from_conv(conv, TILED, trials=2).eval()
    counts = layer.crossbar.counts()
    assert (counts["rows"], counts["cols"], counts["row_tiles"], counts["col_tiles"]) == (45, 14, 6, 2)
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64)
    _check(layer(x), conv(x), 2, 1e-7)


def test_conv2d_depthwise_block_diagonal():
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 8, 3, groups=4, bias=False).double()
    layer = CrossbarConv2d.from_conv(conv).eval()
    w = layer.crossbar.weights()[0]  # (4·9, 8): group g's 9 rows feed only its 2 columns
    mask = torch.block_diag(*[torch.ones(9, 2)] * 4).bool()
    assert torch.all(w[~mask] == 0)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    _check(layer(x), conv(x), 1, 1e-12)


@pytest.mark.parametrize("stride,padding,dilation,groups,mode", [
    (1, 0, 1, 1, "zeros"), (2, 2, 1, 1, "reflect"), (1, "same", 2, 2, "zeros"), (3, 1, 2, 2, "circular"),
    (1, "valid", 1, 1, "replicate")])
def test_conv1d_equals_torch(stride, padding, dilation, groups, mode):
    torch.manual_seed(3)
    conv = nn.Conv1d(4, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=groups,
                     padding_mode=mode).double()
    x = torch.randn(3, 4, 11, dtype=torch.float64)
    ref = conv(x)
    _check(CrossbarConv1d.from_conv(conv, trials=2).eval()(x), ref, 2, 1e-12)
    _check(CrossbarConv1d.from_conv(conv, NEAR_IDEAL, trials=2).eval()(x), ref, 2, 1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_torch_and_extra_dims(bias):
    torch.manual_seed(4)
    lin = nn.Linear(7, 5, bias=bias).double()
    x = torch.randn(3, 4, 7, dtype=torch.float64)  # (B, L, in): extra dims fold into the batch
    for cfg, tol in ((CrossbarConfig(), 1e-12), (NEAR_IDEAL, 1e-7)):
        layer = CrossbarLinear.from_linear(lin, cfg, trials=2).eval()
        _check(layer(x.unsqueeze(0)), lin(x), 2, tol)


@pytest.mark.parametrize("kind,layers,bias,batch_first,nonlin", [
    ("rnn", 1, True, False, "tanh"), ("rnn", 2, False, True, "relu"), ("lstm", 1, True, True, None),
    ("lstm", 2, True, False, None), ("lstm", 2, False, True, None), ("gru", 2, True, False, None)])
def test_recurrent_equals_torch(kind, layers, bias, batch_first, nonlin):
    torch.manual_seed(5)
    kw = dict(num_layers=layers, bias=bias, batch_first=batch_first)
    if kind == "rnn":
        mod, cls = nn.RNN(5, 6, nonlinearity=nonlin, **kw).double(), CrossbarRNN.from_module
    elif kind == "lstm":
        mod, cls = nn.LSTM(5, 6, **kw).double(), CrossbarLSTM.from_module
    else:
        mod, cls = nn.GRU(5, 6, **kw).double(), CrossbarGRU.from_gru
    x = torch.randn(4, 7, 5, dtype=torch.float64)  # (B, L) or (L, B) per batch_first
    batch = 4 if batch_first else 7
    h0 = torch.randn(layers, batch, 6, dtype=torch.float64)
    hx = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
    ref, ref_h = mod(x, hx)
    for cfg, tol in ((CrossbarConfig(), 1e-12), (NEAR_IDEAL, 1e-7)):
        layer = cls(mod, cfg, trials=2).eval()
        out, hn = layer(x, hx)
        _check(out, ref, 2, tol)
        if kind == "lstm":
            _check(hn[0], ref_h[0], 2, tol)
            _check(hn[1], ref_h[1], 2, tol)
        else:
            _check(hn, ref_h, 2, tol)


def test_recurrent_rejects_bidirectional():
    with pytest.raises(ValueError, match="bidirectional"):
        CrossbarLSTM.from_module(nn.LSTM(3, 4, bidirectional=True))


def test_trials_differ_under_faults_and_match_their_own_weights():
    """Each trial of a faulty conv equals torch's conv with that trial's effective kernel."""
    torch.manual_seed(6)
    conv = nn.Conv2d(3, 4, 3, padding=1, groups=1).double()
    layer = CrossbarConv2d.from_conv(conv, CrossbarConfig(nonidealities=[StuckAt(p_lrs=0.05, p_hrs=0.05)]),
                                     trials=3, seed=1).eval()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    y = layer(x)
    w = layer.crossbar.weights()  # (3, 27, 4)
    for t in range(3):
        ref = nn.functional.conv2d(x, w[t].t().reshape(4, 3, 3, 3), conv.bias, padding=1)
        assert torch.allclose(y[t], ref, atol=1e-12)
    assert not torch.allclose(y[0], y[1])
