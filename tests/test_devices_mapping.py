import math

import pytest
import torch

from memristive.config import ConfigError, from_dict
from memristive.crossbar import (MAPPINGS, BalancedDifferential, CrossbarConfig, OffsetDifferential, ReferenceColumn,
                                 check_weights, mapping_from_spec)
from memristive.devices import LinearDevice, device_from_spec, preset
from memristive.quantizer import quantize_levels


def test_linear_device_from_resistance_and_conductance():
    d = LinearDevice(r_on=1e3, r_off=12e3)
    assert d.g_max == pytest.approx(1e-3)
    assert d.g_min == pytest.approx(1 / 12e3)
    d2 = LinearDevice(g_min=1e-6, g_max=1e-4)
    assert d2.r_on == pytest.approx(1e4) and d2.r_off == pytest.approx(1e6)
    assert preset("ti-alox-taox").on_off_ratio == pytest.approx(12.0)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(g_min=2e-3, g_max=1e-3), "g_min"),
        (dict(g_min=1e-3, g_max=1e-3), "g_min"),
        (dict(r_on=12e3, r_off=1e3), "r_on"),
        (dict(r_on=-1.0, r_off=1e3), "r_on"),
        (dict(r_on=1e3, r_off=12e3, levels=1), "levels"),
        (dict(), "r_on"),
    ],
)
def test_bad_devices_are_rejected_with_the_key(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        LinearDevice(**kwargs)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown"):
        preset("nope")


def test_levels_quantization_by_hand():
    g = torch.tensor([1.0, 1.2, 1.26, 2.0, 1.74])
    # 5 levels on [1, 2]: 1.0, 1.25, 1.5, 1.75, 2.0
    out = quantize_levels(g, 1.0, 2.0, 5)
    assert torch.allclose(out, torch.tensor([1.0, 1.25, 1.25, 2.0, 1.75]))


DEV14 = LinearDevice(g_min=1e-4, g_max=1e-3)


def _map(w, mapping, dev=DEV14):
    m = mapping_from_spec(mapping)
    k, _ = m.scale(w, dev)
    gp, gn = m.to_conductances(w, dev)
    return gp, gn, k


def test_differential_mapping_by_hand():
    w = torch.tensor([[1.0, -0.5], [0.0, 2.0]])
    gp, gn, k = _map(w, "differential")
    assert k == pytest.approx(9e-4 / 2.0)
    assert torch.allclose(gp, torch.tensor([[1e-4 + 4.5e-4, 1e-4], [1e-4, 1e-3]]))
    assert torch.allclose(gn, torch.tensor([[1e-4, 1e-4 + 2.25e-4], [1e-4, 1e-4]]))


def test_balanced_mapping_by_hand():
    w = torch.tensor([[1.0, -0.5], [0.0, 2.0]])
    gp, gn, k = _map(w, "balanced")
    # k = 9e-4 / 2 (w_max = 2), G± = 5.5e-4 ± k·W/2
    assert k == pytest.approx(4.5e-4)
    assert torch.allclose(gp, torch.tensor([[5.5e-4 + 2.25e-4, 5.5e-4 - 1.125e-4], [5.5e-4, 1e-3]]))
    assert torch.allclose(gn, torch.tensor([[5.5e-4 - 2.25e-4, 5.5e-4 + 1.125e-4], [5.5e-4, 1e-4]]))


def test_reference_mapping_by_hand():
    w = torch.tensor([[1.0, -1.0], [0.0, 0.5]])
    gp, gn, k = _map(w, ReferenceColumn())
    # [-1, 1] -> [1e-4, 1e-3]: k = 9e-4 / 2, mid = 5.5e-4
    assert k == pytest.approx(4.5e-4)
    assert torch.allclose(gp, torch.tensor([[1e-3, 1e-4], [5.5e-4, 7.75e-4]]))
    assert gn.shape == (2, 1) and torch.allclose(gn, torch.full((2, 1), 5.5e-4))


@pytest.mark.parametrize("kind", sorted(MAPPINGS))
def test_mapping_round_trip(kind):
    dev = LinearDevice(r_on=1e3, r_off=12e3)
    w = torch.randn(784, 100, dtype=torch.float64)
    m = mapping_from_spec(kind)
    gp, gn, k = _map(w, m, dev)
    assert torch.allclose(m.to_weights(gp, gn, k), w, atol=1e-12)
    assert gp.min() >= 1 / 12e3 - 1e-15 and gp.max() <= 1e-3 + 1e-15
    assert m.w_max_for(k, dev) == pytest.approx(float(w.abs().max()))


def test_physical_shape_and_code_levels():
    assert OffsetDifferential().physical_shape(784, 100) == (784, 200)
    assert BalancedDifferential().physical_shape(100, 10) == (100, 20)
    assert ReferenceColumn().physical_shape(784, 100) == (784, 101)
    # integer codes -Q..Q: offset pairs store |q| (Q+1 levels), the others q itself (2Q+1)
    assert OffsetDifferential().code_levels(31) == 32
    assert BalancedDifferential().code_levels(31) == 63 and ReferenceColumn().code_levels(31) == 63


def test_mapping_specs_and_errors():
    assert isinstance(mapping_from_spec({"kind": "balanced", "w_max": 2.0}), BalancedDifferential)
    with pytest.raises(ConfigError, match="mapping.kind='bitsliced'"):
        mapping_from_spec({"kind": "bitsliced"})
    with pytest.raises(ConfigError, match="mapping.w_max"):
        OffsetDifferential(w_max=float("inf"))
    with pytest.raises(ConfigError, match="renamed"):
        from_dict(CrossbarConfig, {"device": "ti-alox-taox"})


def test_weights_beyond_explicit_w_max_are_an_error():
    with pytest.raises(ValueError, match="w_max"):
        _map(torch.tensor([[2.0]]), OffsetDifferential(w_max=1.0))


@pytest.mark.parametrize("bad", [torch.tensor([[float("nan")]]), torch.tensor([[float("inf")]]), torch.ones(3),
                                 torch.empty(0, 3), torch.ones(2, 2, dtype=torch.int64)])
def test_bad_weights_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        check_weights(bad)


def test_device_registry_and_presets():
    assert isinstance(device_from_spec("ti-alox-taox"), LinearDevice)
    d = device_from_spec({"preset": "ti-alox-taox", "levels": 16})
    assert d.levels == 16 and d.g_max == pytest.approx(1e-3)
    d = device_from_spec({"preset": "ti-alox-taox", "r_on": 2e3})  # one field of a preset
    assert d.g_max == pytest.approx(5e-4) and d.g_min == pytest.approx(1 / 12e3)
    assert isinstance(device_from_spec({"r_on": 1e3, "r_off": 2e3}), LinearDevice)  # kind defaults to linear
    with pytest.raises(ConfigError, match="memristor='cuda'"):
        device_from_spec("cuda")
    with pytest.raises(ConfigError, match="memristor.kind='pcm'"):
        device_from_spec({"kind": "pcm"})
    with pytest.raises(ValueError, match="outside the device range"):
        d.program(torch.tensor([1.0]))
