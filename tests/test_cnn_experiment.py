"""cnn-variation: evaluating a saved software model, and splitting Monte Carlo instances by seed."""

from __future__ import annotations

import csv

import pytest
import torch

from memristive.experiments.runner import run_experiment

TINY = ["networks=[lenet5]", "n_train=1000", "lr=0.01", "n_test=60", "epochs=1", "hwa_epochs=1", "trials=3",
        "variations=[0.3]", "stuck_at=[]", "adc_bits=[]", "models=[software]"]


def _rows(folder):
    with open(folder / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "train"
    res, _ = run_experiment("cnn-variation", out=out, overrides=TINY, threads=1)
    return out, res


def test_software_checkpoint_evaluates_the_trained_model(trained, tmp_path):
    out, res = trained
    # the run folder (one trained lenet5 in it) and the state-dict file itself
    pt = next(out.glob("points/*/lenet5_software.pt"))
    for ckpt in (out, pt):
        res2, _ = run_experiment("cnn-variation", out=tmp_path / pt.stem / str(ckpt is out),
                                 overrides=TINY + [f"software_checkpoint={ckpt}"], threads=1)
        assert res2["metrics"]["lenet5"]["software"] == res["metrics"]["lenet5"]["software"]
        # same seed, same instances: the evaluation rows are identical
        assert _rows(tmp_path / pt.stem / str(ckpt is out)) == _rows(out)


def test_instance_seed_changes_the_instances_not_the_model(trained, tmp_path):
    out, res = trained
    accs = {}
    for s in (0, 1):
        _, run = run_experiment("cnn-variation", out=tmp_path / f"s{s}",
                                overrides=TINY + [f"software_checkpoint={out}", f"instance_seed={s}", "n_test=200"],
                                threads=1)
        accs[s] = [float(r["min"]) for r in _rows(tmp_path / f"s{s}")] + [float(r["max"]) for r in _rows(tmp_path / f"s{s}")]
    assert accs[0] != accs[1]  # σ = 0.3 on 3 instances × 200 images: different draws differ


def test_software_checkpoint_of_another_network_is_refused(trained, tmp_path):
    out, _ = trained
    pt = next(out.glob("points/*/lenet5_software.pt"))
    state = torch.load(pt, weights_only=True)
    state.pop(next(iter(state)))  # a state dict missing a tensor
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match="software_checkpoint="):
        run_experiment("cnn-variation", out=tmp_path / "r", overrides=TINY + [f"software_checkpoint={bad}"], threads=1)
