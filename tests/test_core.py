"""The array core: one mapping used by every consumer, self-contained state, registries in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from memristive.config import ConfigError, from_dict
from memristive.crossbar import MAPPINGS, Converter, Crossbar, CrossbarConfig, mapping_from_spec
from memristive.devices import LinearDevice
from memristive.methods.insitu import DeviceArray
from memristive.methods.liu import realized_weights
from memristive.nn import convert, mlp
from memristive.nonideal import DefectPercent, DeviceVariation, ReadNoise, StuckAt
from memristive.quant import weight_noise
from memristive.quantizer import quantize, quantize_levels

DEV = LinearDevice(r_on=1e3, r_off=12e3)
KINDS = sorted(MAPPINGS)


def _w(seed=0, shape=(6, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------------ one mapping everywhere
@pytest.mark.parametrize("kind", KINDS)
def test_crossbar_read_uses_the_mapping(kind):
    w = _w()
    m = mapping_from_spec(kind)
    xb = Crossbar.from_weights(w, memristor=DEV, mapping=kind, trials=2)
    gp, gn = m.to_conductances(w, DEV)
    assert torch.allclose(xb.g_pos[0], gp, rtol=0, atol=1e-18)
    assert torch.allclose(xb.g_neg[1], gn.expand(-1, xb.g_neg.shape[-1]), rtol=0, atol=1e-18)
    assert xb.k == pytest.approx(m.scale(w, DEV)[0])
    assert torch.allclose(xb.weights()[1], w, atol=1e-12)
    x = _w(1, (3, 6))
    assert torch.allclose(xb.matmul(x)[0], x @ w, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_insitu_write_uses_the_mapping(kind):
    w, dw = _w(), 0.1 * _w(2)
    m = mapping_from_spec({"kind": kind, "w_max": 4.0})
    xb = Crossbar.from_weights(w, memristor=DEV, mapping=m, trials=2)
    arr = DeviceArray(xb, w)
    arr.write(dw.expand(2, -1, -1))
    target = w + dw
    gp, gn = m.to_conductances(target, DEV, xb.k, 4.0)
    assert torch.allclose(xb.g_pos[1], gp, atol=1e-15)
    assert torch.allclose(xb.weights()[0], target, atol=1e-12)
    for side in arr.sides:
        assert torch.allclose(arr.target(target, side), m.target(target, side, DEV, xb.k, 4.0))


@pytest.mark.parametrize("kind", KINDS)
def test_liu_remap_uses_the_mapping(kind):
    w = _w()
    xb = Crossbar.from_weights(w, memristor=DEV, mapping=kind, trials=2, nonidealities=[StuckAt(p_hrs=0.2)], seed=3)
    arr = DeviceArray(xb, w)
    real = realized_weights(w, arr)  # stuck devices at their value, the rest at the mapping target
    assert torch.allclose(real, xb.weights(), atol=1e-12)  # no variation: exactly what the array holds
    ideal = Crossbar.from_weights(w, memristor=DEV, mapping=kind, trials=2)
    assert torch.allclose(realized_weights(w, DeviceArray(ideal, w)), w.expand(2, -1, -1), atol=1e-12)


@pytest.mark.parametrize("mode", ["multiplicative", "additive", "lognormal"])
@pytest.mark.parametrize("kind", KINDS)
def test_weight_noise_training_is_the_crossbar_variation(kind, mode):
    """Same generator state: the training noise is, draw for draw, the varied crossbar's weight error."""
    w = _w()
    sigma = 0.2
    xb = Crossbar.from_weights(w, memristor=DEV, mapping=kind, nonidealities=[DeviceVariation(sigma, mode)], seed=11)
    trained = weight_noise(w, sigma, mode, None, DEV, kind, generator=torch.Generator().manual_seed(11))
    assert torch.allclose(xb.weights()[0], trained, atol=1e-10)
    assert not torch.allclose(trained, w, atol=1e-3)


# ------------------------------------------------------------------------------ self-contained state
def _hw(cfg, seed):
    torch.manual_seed(0)
    model = mlp([8, 6, 3], activation="relu")
    return convert(model, cfg, trials=3, seed=seed)


def test_state_round_trip_into_a_fresh_skeleton(tmp_path):
    cfg = CrossbarConfig(memristor=DEV, nonidealities=[DefectPercent(0.2)], read_noise=ReadNoise(0.02),
                         adc=Converter(bits=6), dac=Converter(bits=8, range=1.0))
    x = torch.rand(5, 8)
    hw = _hw(cfg, seed=1)
    for layer in hw.modules():
        if isinstance(layer, Crossbar):
            layer.calibrate_adc(torch.rand(20, layer.in_features), percentile=99)
    torch.save(hw.state_dict(), tmp_path / "hw.pt")
    y = hw(x)  # first read after programming (read-noise generator fresh from the seed)
    skeleton = _hw(cfg, seed=99)  # other defects, other k, other seed, no ADC calibration
    assert not torch.allclose(skeleton(x), y)
    skeleton = _hw(cfg, seed=99)
    skeleton.load_state_dict(torch.load(tmp_path / "hw.pt"))  # torch's defaults (weights_only=True)
    assert torch.equal(skeleton(x), y)


def test_state_from_a_different_config_is_refused():
    a = _hw(CrossbarConfig(memristor=DEV, adc=Converter(bits=6)), seed=1)
    b = _hw(CrossbarConfig(memristor=DEV, adc=Converter(bits=8)), seed=1)
    with pytest.raises(ConfigError, match=r"different config \(crossbar.adc.bits: saved 6, this one 8\)"):
        b.load_state_dict(a.state_dict())


# ------------------------------------------------------------------------------ registries and configs
def test_effects_parse_in_a_fresh_process():
    code = ("from memristive.config import from_dict\n"
            "from memristive.crossbar import CrossbarConfig\n"
            "c = from_dict(CrossbarConfig, {'memristor': {'preset': 'ti-alox-taox', 'levels': 8}, 'mapping': 'balanced',"
            " 'nonidealities': [{'kind': 'variation', 'sigma': 0.1}, {'kind': 'stuck_at', 'p_hrs': 0.01}]})\n"
            "print(type(c.nonidealities[0]).__name__, type(c.mapping).__name__, c.memristor.levels)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["DeviceVariation", "BalancedDifferential", "8"]


@pytest.mark.parametrize("spec, needle", [
    ({"nonidealities": [{"kind": "nope"}]}, "crossbar.nonidealities[0].kind='nope'"),
    ({"nonidealities": [{"kind": "lognormal", "sigma": float("inf")}]}, "crossbar.nonidealities[0].sigma=inf"),
    ({"nonidealities": [{"sigma": 0.1}]}, "a 'kind' key is needed"),
    ({"read_noise": {"sigma": float("inf")}}, "crossbar.read_noise.sigma=inf"),
    ({"adc": {"bits": 1.5}}, "crossbar.adc.bits=1.5"),
    ({"tile": {"rows": 0}}, "crossbar.tile.rows=0"),
    ({"mapping": {"kind": "balanced", "w_max": float("inf")}}, "crossbar.mapping.w_max=inf"),
    ({"memristor": {"r_on": 2e3, "r_off": 1e3}}, "crossbar.memristor.r_on=2000.0"),
    ({"device": "cuda"}, "crossbar.device: this key was renamed"),
])
def test_config_errors_name_the_key_once(spec, needle):
    with pytest.raises(ConfigError) as exc:
        from_dict(CrossbarConfig, spec, prefix="crossbar")
    msg = str(exc.value)
    assert needle in msg
    assert "adc.converter" not in msg and "tile.tile" not in msg and "memristor.memristor" not in msg


def test_torch_device_is_device():
    xb = Crossbar.from_weights(_w(), memristor=DEV, device="cpu")
    assert xb.g_pos.device.type == "cpu"
    with pytest.raises(ConfigError, match="memristor="):
        Crossbar.from_weights(_w(), device="ti-alox-taox")


# ------------------------------------------------------------------------------ the quantizer core
def test_quantizer_core_by_hand():
    x = torch.tensor([-3.0, -0.26, 0.24, 0.26, 0.74, 5.0], requires_grad=True)
    # scale 0.5, codes clamped to [-4, 4]
    y = quantize(x, 0.5, -4, 4, grad="ste")
    assert y.tolist() == [-2.0, -0.5, 0.0, 0.5, 0.5, 2.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 6  # straight through, saturated values too
    x.grad = None
    quantize(x, 0.5, -4, 4, grad="clipped").sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # zero where clamped
    # zero point: unsigned 2-bit grid, s = 1, z = 1 -> values in {-1, 0, 1, 2}
    assert quantize(torch.tensor([-3.0, 0.4, 1.6, 9.0]), 1.0, 0, 3, zero_point=1, grad="none").tolist() == [-1, 0, 2, 2]
    assert quantize_levels(torch.tensor([1.1, 1.6]), 1.0, 2.0, 3).tolist() == [1.0, 1.5]


def test_one_field_of_the_configured_device_and_presets_from_a_file(tmp_path, monkeypatch):
    from memristive.devices import load_presets

    base = CrossbarConfig()  # ti-alox-taox, 1-12 kOhm
    cfg = from_dict(CrossbarConfig, {"memristor": {"r_on": 2000.0}}, base=base)  # --set crossbar.memristor.r_on=2000
    assert cfg.memristor.g_max == pytest.approx(5e-4) and cfg.memristor.g_min == pytest.approx(1 / 12e3)
    f = tmp_path / "presets.yaml"
    f.write_text("my-rram: {kind: linear, r_on: 5000, r_off: 50000, levels: 32}\n")
    assert load_presets(f) == ["my-rram"]
    assert from_dict(CrossbarConfig, {"memristor": "my-rram"}).memristor.levels == 32
    f.write_text("bad-one: {kind: linear, r_on: 5000, r_off: 100}\n")
    with pytest.raises(ConfigError, match=r"presets\[bad-one\].r_on=5000"):
        load_presets(f)
    f.write_text("env-one: {g_min: 1.0e-6, g_max: 1.0e-4}\n")
    monkeypatch.setenv("MEMRISTIVE_PRESETS", str(f))
    assert from_dict(CrossbarConfig, {"memristor": "env-one"}).memristor.g_max == pytest.approx(1e-4)
