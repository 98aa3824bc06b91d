"""CNN Monte Carlo benchmark: the cnn-variation ResNet on 10,000 images × 100 device instances.

    .venv/bin/python benchmarks/bench_cnn.py [--images 10000] [--trials 100] [--threads 1] [--batch 100]

Rows: one digital torch pass over the images (eval mode); the converted ResNet with device variation
and stuck-at faults on 1 and on 100 instances (every array a plain linear read: one grouped conv per
layer for all instances); the same 100 instances with an 8-bit ADC (every conv through im2col +
``Crossbar.matmul``, timed on ``--adc-images`` images and scaled). Each ratio is printed beside its
arithmetic floor (``T`` instances need ``T`` times the multiply-adds of one digital pass) and the bar
(1.3 × the floor, issue 11).

The converted models read their inputs in the batch :func:`memristive.nn.micro_batch` chooses
(``--micro auto``, the default: cache-sized pieces of the ``T·B`` sample-instances; with one instance
it is ``--batch``); ``--micro off`` reads them in ``--batch`` like the digital pass. The digital pass
always runs in ``--batch``. The workload (images × instances) is the same either way.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from memristive.crossbar import Converter, CrossbarConfig
from memristive.experiments.cnn import small_resnet
from memristive.nn import convert, micro_batch
from memristive.nonideal import DeviceVariation, StuckAt


def timed(fn, repeats, device="cpu"):
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    fn()  # warm-up
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--adc-images", type=int, default=500)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ap.add_argument("--micro", choices=["auto", "off"], default="auto",
                    help="converted models read in memristive.nn.micro_batch's batch (auto) or in --batch (off)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = small_resnet(1, 10, args.width).eval().to(dev)
    x = torch.rand(args.images, 1, 28, 28, device=dev)
    cfg = CrossbarConfig(nonidealities=[DeviceVariation(0.1), StuckAt(p_hrs=0.005, p_lrs=0.005)])

    @torch.no_grad()
    def run(m, images=x, batch=args.batch):
        for b in images.split(batch):
            m(b)

    def mb(m):
        return micro_batch(m, x, args.batch) if args.micro == "auto" else args.batch

    t_dig = timed(lambda: run(model), args.repeats, args.device)
    hw1 = convert(model, cfg, trials=1, seed=1)
    t_one = timed(lambda: run(hw1, batch=mb(hw1)), args.repeats, args.device)
    hwn = convert(model, cfg, trials=args.trials, seed=1)
    t_many = timed(lambda: run(hwn, batch=mb(hwn)), args.repeats, args.device)
    hw_adc = convert(model, dataclasses.replace(cfg, adc=Converter(bits=8)), trials=args.trials, seed=1)
    n_adc = min(args.adc_images, args.images)
    t_adc = timed(lambda: run(hw_adc, x[:n_adc], batch=mb(hw_adc)), 1, args.device) * args.images / n_adc

    macs = sum(p.numel() for p in model.parameters())  # for the header only
    print(f"small ResNet (width {args.width}, {macs:,} parameters), {args.images:,} images of 1×28×28 in batches of "
          f"{args.batch}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}")
    print(f"converted models read in batches of {mb(hw1)} (1 instance) and {mb(hwn)} ({args.trials} instances) "
          f"(--micro {args.micro}); the digital pass in {args.batch}")
    print(f"{'row':<52} {'time s':>9} {'÷ digital':>10} {'floor':>7} {'bar':>7} {'ok':>4}")
    rows = [("digital torch (one pass)", t_dig, 1, None),
            ("1 instance, variation + stuck-at", t_one, 1, 1.3),
            (f"{args.trials} instances, variation + stuck-at", t_many, args.trials, 1.3 * args.trials),
            (f"{args.trials} instances + 8-bit ADC (im2col, scaled from {n_adc})", t_adc, args.trials, None)]
    for name, t, floor, bar in rows:
        ratio = t / t_dig
        ok = "" if bar is None else ("yes" if ratio <= bar else "no")
        print(f"{name:<52} {t:>9.2f} {ratio:>10.1f} {floor:>7} {'' if bar is None else f'{bar:g}':>7} {ok:>4}")


if __name__ == "__main__":
    main()
