"""The papers' directional claims, on quick settings (the measured tables are in docs/RESULTS.md).

* calibration paper (Du, Peng & Liu 2023, Fig. 6): calibration beats no calibration, and calibration +
  in-situ training beats calibration alone, on defective arrays;
* GRU paper (Hua et al., Fig. 7): a model trained with weight noise beats the plainly trained one under
  the device variation it was trained for (a small GRU on a synthetic sequence task, additive σ = 0.3).

Each claim is checked on the same Monte Carlo arrays for both sides of the comparison, on settings
where the effect the paper describes exists (arrays whose defects cost accuracy; variation that costs
accuracy). DTGA's claim is tested in tests/test_dtga.py.
"""

from __future__ import annotations

import pytest
import torch

from memristive.crossbar import CrossbarConfig
from memristive.experiments.common import load_data
from memristive.methods.calibration import CalibrationConfig, calibrate
from memristive.methods.insitu import InSituConfig, insitu_train
from memristive.methods.software import accuracy, train_classifier
from memristive.nn import convert, mlp
from memristive.nonideal import DefectPercent, DeviceVariation


@pytest.fixture(scope="module")
def mnist_mlp():
    """The calibration paper's 784×100×10 Abs MLP, trained briefly on 3,000 MNIST images."""
    data = load_data("mnist", 3000, 1000)
    torch.manual_seed(0)
    model = mlp([784, 100, 10], activation="abs", bias=False)
    train_classifier(model, data.x_train, data.y_train, epochs=3, lr=1e-3, batch_size=128, seed=0, progress=False)
    return model.eval(), data


@pytest.fixture(scope="module")
def defective(mnist_mlp):
    """20 % defects (the paper's model: half stuck at HRS, half lognormal σ~U[0.6, 1]), balanced pairs,
    12 arrays: a regime where the defects cost accuracy, as in the paper's Fig. 6."""
    model, data = mnist_mlp
    software = float(accuracy(model, data.x_test, data.y_test)[0])  # ≈ 0.85 on these settings
    cfg = CrossbarConfig(mapping="balanced", nonidealities=[DefectPercent(alpha=0.2)])
    hw = convert(model, cfg, trials=12, seed=5)
    none = accuracy(hw, data.x_test, data.y_test)
    cal = calibrate(hw, model, data.x_train, CalibrationConfig(n_samples=3000))
    return model, data, none, cal, software


def test_calibration_beats_no_calibration(defective):
    model, data, none, cal, software = defective
    assert float(none.mean()) < software - 0.03  # the defects hurt (measured: 0.78 vs 0.85)
    with torch.no_grad():
        calibrated = accuracy(cal, data.x_test, data.y_test)
    assert float(calibrated.mean()) > float(none.mean()) + 0.01
    assert int((calibrated > none).sum()) >= 8  # and on most of the 12 arrays


@pytest.mark.parametrize("write_model", ["pulsed", "exact"])
def test_calibration_plus_insitu_beats_calibration(defective, write_model):
    import copy

    model, data, _, cal, _ = defective
    cal = copy.deepcopy(cal)  # the fixture's arrays stay as programmed
    with torch.no_grad():
        before = accuracy(cal, data.x_test, data.y_test)
    cfg = InSituConfig(epochs=1, n_train=2000, lr=1.0, write_model=write_model)
    stats = insitu_train(cal, data.x_train, data.y_train, cfg, progress=False)
    with torch.no_grad():
        after = accuracy(cal, data.x_test, data.y_test)
    assert stats["writes_per_device_mean"] > 0
    assert float(after.mean()) > float(before.mean()) + 0.01


def _sequence_task():
    from memristive.methods.qat import SequenceTask

    g = torch.Generator().manual_seed(0)

    def make(n):
        x = torch.randn(n, 10, 3, generator=g)
        y = ((x[:, :, 0] * x[:, :, 1]).sum(1) + x[:, :, 2].sum(1) > 0).long()
        return x, y

    (xtr, ytr), (xte, yte) = make(800), make(500)
    return SequenceTask(xtr, ytr, xte, yte, "classification", "toy", num_outputs=2)


def test_noise_training_beats_plain_training_under_its_variation():
    from memristive.methods.qat import TrainConfig, evaluate_crossbar, fp_then_qat, quantize_finetune
    from memristive.nn.gru import GRUNet
    from memristive.quant import QuantConfig, WeightNoise

    task = _sequence_task()
    quant = QuantConfig(weight_bits=6, quantize_input=False)
    qat_cfg = TrainConfig(epochs=3, lr=3e-3, batch_size=64)
    fp, plain = fp_then_qat(lambda: GRUNet(3, 32, 1, 2), task, TrainConfig(epochs=10, lr=1e-2, batch_size=64), qat_cfg,
                            quant, None, progress=False)
    sigma, mode = 0.3, "additive"  # the noise form of the evaluated variation (range-relative Gaussian)
    noisy = quantize_finetune(fp, task, quant, WeightNoise(sigma, mode), qat_cfg, seed=1, progress=False)
    cfg = CrossbarConfig(nonidealities=[DeviceVariation(sigma, mode)])
    a = evaluate_crossbar(plain, task, cfg, trials=20, seed=5)  # the same 20 device instances for both
    b = evaluate_crossbar(noisy, task, cfg, trials=20, seed=5)
    ideal = evaluate_crossbar(plain, task, CrossbarConfig(), trials=1)
    assert float(a.mean()) < float(ideal.mean()) - 0.03  # the variation hurts the plain model (0.78 vs 0.92)
    assert float(b.mean()) > float(a.mean()) + 0.01  # measured: 0.804 vs 0.782
    assert int((b > a).sum()) >= 12  # on most of the 20 device instances (measured: 16)
