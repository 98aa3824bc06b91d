import math

import pytest
import torch

from memristive.config import ConfigError
from memristive.crossbar import Mapping, conductances_to_weights, physical_shape, weights_to_conductances
from memristive.devices import LinearDevice, preset, quantize_to_levels


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
    out = quantize_to_levels(g, 1.0, 2.0, 5)
    assert torch.allclose(out, torch.tensor([1.0, 1.25, 1.25, 2.0, 1.75]))


def test_differential_mapping_by_hand():
    w = torch.tensor([[1.0, -0.5], [0.0, 2.0]])
    gp, gn, k = weights_to_conductances(w, 1e-4, 1e-3, Mapping("differential"))
    assert k == pytest.approx(9e-4 / 2.0)
    assert torch.allclose(gp, torch.tensor([[1e-4 + 4.5e-4, 1e-4], [1e-4, 1e-3]]))
    assert torch.allclose(gn, torch.tensor([[1e-4, 1e-4 + 2.25e-4], [1e-4, 1e-4]]))


def test_reference_mapping_by_hand():
    w = torch.tensor([[1.0, -1.0], [0.0, 0.5]])
    gp, gn, k = weights_to_conductances(w, 1e-4, 1e-3, Mapping("reference"))
    # [-1, 1] -> [1e-4, 1e-3]: k = 9e-4 / 2, mid = 5.5e-4
    assert k == pytest.approx(4.5e-4)
    assert torch.allclose(gp, torch.tensor([[1e-3, 1e-4], [5.5e-4, 7.75e-4]]))
    assert gn.shape == (2, 1) and torch.allclose(gn, torch.full((2, 1), 5.5e-4))


@pytest.mark.parametrize("scheme", ["differential", "reference"])
def test_mapping_round_trip(scheme):
    w = torch.randn(784, 100, dtype=torch.float64)
    gp, gn, k = weights_to_conductances(w, 1 / 12e3, 1e-3, Mapping(scheme))
    assert torch.allclose(conductances_to_weights(gp, gn, k), w, atol=1e-12)
    assert gp.min() >= 1 / 12e3 - 1e-15 and gp.max() <= 1e-3 + 1e-15


def test_physical_shape():
    assert physical_shape(784, 100, "differential") == (784, 200)
    assert physical_shape(100, 10, "differential") == (100, 20)
    assert physical_shape(784, 100, "reference") == (784, 101)


def test_weights_beyond_explicit_w_max_are_an_error():
    with pytest.raises(ValueError, match="w_max"):
        weights_to_conductances(torch.tensor([[2.0]]), 1e-4, 1e-3, Mapping(w_max=1.0))


@pytest.mark.parametrize("bad", [torch.tensor([[float("nan")]]), torch.tensor([[float("inf")]]), torch.ones(3)])
def test_bad_weights_rejected(bad):
    with pytest.raises(ValueError):
        weights_to_conductances(bad, 1e-4, 1e-3, Mapping())
