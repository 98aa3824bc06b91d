"""Select the in-situ learning rate on a validation split (never the test set).

The documented general rule of docs/results/calibration.md ("lr selection"): 8 arrays at 10 % defects
(seed 1), calibration (mean standard) + in-situ training on training images 0–9,999 (1 epoch, batch 200),
validation accuracy on training images 50,000–59,999; lr grid 0.01 … 3; the chosen lr is the smallest
within 0.5 points of the best, on the default (offset) mapping. Usage:

    PYTHONPATH=src python scripts/insitu_lr_selection.py --out runs/insitu-lr [--set insitu.write_model=exact ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import yaml

from memristive.config import from_dict, to_dict
from memristive.crossbar import CrossbarConfig, mapping_from_spec
from memristive.experiments.common import SoftwareMLPConfig, load_data, software_mlp
from memristive.experiments.runner import RunFolder
from memristive.methods.calibration import CalibrationConfig, calibrate
from memristive.methods.insitu import InSituConfig, insitu_train
from memristive.methods.software import accuracy
from memristive.nn import convert
from memristive.nonideal import DefectPercent

LRS = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/insitu-lr")
    ap.add_argument("--set", action="append", default=[], help="insitu.KEY=VALUE (e.g. insitu.write_model=exact)")
    ap.add_argument("--mappings", default="differential,balanced")
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    over = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        assert k.startswith("insitu."), k
        over[k[len("insitu."):]] = yaml.safe_load(v)
    base = from_dict(InSituConfig, {"epochs": 1, "n_train": 10000, **over}, prefix="insitu")
    sw = SoftwareMLPConfig()
    data = load_data(sw.dataset, None, None)
    run = RunFolder(args.out, "insitu-lr", sw)
    model = software_mlp(run, data, sw.sizes, sw.epochs, sw.lr, sw.batch_size, 0, sw.activation)
    x_tr, y_tr = data.x_train[:10000], data.y_train[:10000]
    x_val, y_val = data.x_train[50000:60000], data.y_train[50000:60000]
    rows = []
    for m in args.mappings.split(","):
        xcfg = CrossbarConfig(mapping=mapping_from_spec(m), nonidealities=[DefectPercent(alpha=0.1)])
        for lr in LRS:
            hw = convert(model, xcfg, trials=args.trials, seed=1)
            cal = calibrate(hw, model, data.x_train, CalibrationConfig(), inplace=True)
            before = float(accuracy(cal, x_val, y_val).mean()) * 100
            st = insitu_train(cal, x_tr, y_tr, dataclasses.replace(base, lr=lr), progress=False)
            val = float(accuracy(cal, x_val, y_val).mean()) * 100
            row = {"mapping": m, "lr": lr, "validation": round(val, 2), "calibration_only": round(before, 2),
                   "writes_per_device": round(st["writes_per_device_mean"], 3),
                   "pulses_per_device": round(st.get("pulses_per_device_mean", float("nan")), 3)}
            print(row, flush=True)
            rows.append(row)
    choice = {}
    for m in args.mappings.split(","):
        rs = [r for r in rows if r["mapping"] == m]
        best = max(r["validation"] for r in rs)
        choice[m] = min(r["lr"] for r in rs if r["validation"] >= best - 0.5)
    out = {"insitu": to_dict(base), "rows": rows, "chosen_lr": choice}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "lr_selection.json").write_text(json.dumps(out, indent=1))
    print("chosen (smallest lr within 0.5 points of the best):", choice)


if __name__ == "__main__":
    main()
