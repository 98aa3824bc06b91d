"""Step-by-step agreement of the DTGA optimizer and the DTGA trainer on the dtga-mnist network.

    PYTHONPATH=src .venv/bin/python benchmarks/dtga_optimizer_steps.py [--steps 60] [--scheme dtga baseline]

Both start from the same weights (the trainer's), see the same mini-batches of the first 6,000 MNIST
training images (1 trial, η = 0) and apply the default update rule; printed per scheme: the first step whose
SET/RESET pulse counts differ (step, difference, pulses of that step) and the largest weight difference at
the end. Not a test: it documents where float rounding first changes a pulse (docs/results/analog.md §4).
"""

import argparse

import torch

from memristive.experiments.common import load_data
from memristive.experiments.dtga import converted_twin
from memristive.methods.analog_optim import DTGA, trial_loss
from memristive.methods.dtga import DTGAConfig, InSituMLP, UpdateRule


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--scheme", nargs="+", default=["dtga", "baseline"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_data("mnist", 100 * args.steps, 100)
    for scheme in args.scheme:
        cfg = DTGAConfig(update=UpdateRule(scheme=scheme))
        old = InSituMLP(cfg, trials=1, seed=0)
        model = converted_twin(InSituMLP(cfg, trials=1, seed=0), cfg, 1)
        opt = DTGA(model, lr=cfg.lr, update=cfg.update)
        perm = torch.randperm(100 * args.steps, generator=torch.Generator().manual_seed(1))
        first = None
        for i in range(args.steps):
            idx = perm[i * 100 : (i + 1) * 100]
            st = old.train_step(data.x_train[idx], data.y_train[idx])
            before = opt.totals()
            opt.zero_grad()
            trial_loss(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            after = opt.totals()
            diff = (after["set"] - before["set"] - st["set"], after["reset"] - before["reset"] - st["reset"])
            if first is None and diff != (0.0, 0.0):
                first = (i, diff, st["set"] + st["reset"])
        dw = max(float((m.crossbar.weights() - pl.weights()).abs().max()) for pl, m in zip(old.layers, [model[1], model[4]]))
        print(f"{scheme}: first step with other pulse counts (step, (ΔSET, ΔRESET), pulses of the step): {first}; "
              f"max |ΔW| after {args.steps} steps: {dw:.4f}")


if __name__ == "__main__":
    main()
