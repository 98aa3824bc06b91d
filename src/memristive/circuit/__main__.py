"""``python -m memristive.circuit``: check the simulator against ngspice on a random tile.

    python -m memristive.circuit --rows 64 --cols 32 --r-row 2 --r-col 2 --netlist tile.cir
    python -m memristive.circuit --rows 32 --cols 16 --r-row 1 --r-col 1 --sinh-b 4   # nonlinear cells (Newton)
    python -m memristive.circuit --bench          # cost per tile: block / sparse solver, ideal read, ngspice

Draws conductances uniformly in resistance between ``--r-min`` and ``--r-max`` ohms and input
voltages in ``[0, --v-max]``, writes the netlist (optional), runs ngspice, and prints the largest
relative difference per TIA output of the simulator's ideal read and of its line-resistance read.
With ``--sinh-b B`` every cell conducts ``I = G·sinh(B·V)/B`` (behavioural sources in ngspice, Newton's
method in the simulator).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from .irdrop import tia_outputs
from .netlist import tile_netlist
from ..devices.iv import SinhIV
from .ngspice import CircuitError, run_ngspice
from .nonlinear import nonlinear_currents


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memristive.circuit", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--r-row", type=float, default=0.0, help="row wire resistance per segment (ohm)")
    ap.add_argument("--r-col", type=float, default=0.0, help="column wire resistance per segment (ohm)")
    ap.add_argument("--r-s", type=float, default=1e3, help="TIA feedback resistance (ohm)")
    ap.add_argument("--r-min", type=float, default=1e3, help="lowest cell resistance (ohm)")
    ap.add_argument("--r-max", type=float, default=12e3, help="highest cell resistance (ohm)")
    ap.add_argument("--v-max", type=float, default=0.2, help="largest input voltage")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sinh-b", type=float, default=0.0, help="nonlinear cells I = G*sinh(b*V)/b with this b (1/V)")
    ap.add_argument("--netlist", help="also write the netlist to this path")
    ap.add_argument("--bench", action="store_true", help="time the solvers, the ideal read and ngspice per tile size")
    ap.add_argument("--sizes", default="32,64,128,256", help="tile sizes for --bench: N (square) or RxC, comma separated")
    ap.add_argument("--spice-max", type=int, default=64, help="largest tile --bench runs in ngspice")
    ap.add_argument("--sparse-max", type=int, default=128, help="largest tile --bench runs the sparse solver on")
    a = ap.parse_args(argv)
    if a.bench:
        sizes = [tuple(int(v) for v in x.lower().split("x")) if "x" in x.lower() else (int(x), int(x))
                 for x in a.sizes.split(",")]
        return bench(sizes, a.spice_max, a.sparse_max, a.seed)
    if a.rows < 1 or a.cols < 1 or not 0 < a.r_min <= a.r_max:
        ap.error("need rows, cols >= 1 and 0 < r-min <= r-max")
    gen = torch.Generator().manual_seed(a.seed)
    g = 1.0 / (a.r_min + (a.r_max - a.r_min) * torch.rand(a.rows, a.cols, generator=gen, dtype=torch.float64))
    v = a.v_max * torch.rand(a.rows, generator=gen, dtype=torch.float64)
    if a.sinh_b < 0:
        ap.error("--sinh-b must be >= 0 (0 = ohmic cells)")
    iv = SinhIV(a.sinh_b) if a.sinh_b > 0 else None
    net = tile_netlist(g, v, a.r_s, a.r_row, a.r_col, iv=iv)
    if a.netlist:
        net.write(a.netlist)
        print(f"netlist: {a.netlist} ({len(net.text.splitlines())} lines)")
    try:
        t0 = time.perf_counter()
        vals = run_ngspice(net)
        t_spice = time.perf_counter() - t0
    except CircuitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spice = torch.tensor([vals[n] for n in net.output_nodes], dtype=torch.float64)
    if iv is not None:  # warm-up: torch.linalg initialises lazily on its first call
        nonlinear_currents(g[:2, :2], v[:2], iv, 1.0, 1.0)
    t0 = time.perf_counter()
    if iv is None:
        sim = tia_outputs(g, v[None], a.r_s, a.r_row, a.r_col)[0]
    else:
        sim = -a.r_s * nonlinear_currents(g, v, iv, a.r_row, a.r_col)[0]
    t_sim = time.perf_counter() - t0
    ideal = tia_outputs(g, v[None], a.r_s)[0]
    err = lambda x: float(((x - spice).abs() / spice.abs()).max())  # noqa: E731
    cells = f", cells I = G*sinh({a.sinh_b}*V)/{a.sinh_b}" if iv is not None else ""
    print(f"{a.rows}x{a.cols} tile, r_row={a.r_row} ohm, r_col={a.r_col} ohm, R_s={a.r_s} ohm{cells}")
    print(f"ngspice            : {t_spice:.2f} s")
    print(f"simulator (wires)  : {t_sim * 1e3:.1f} ms, max relative difference to ngspice {err(sim):.2e}")
    print(f"simulator (ideal)  : max relative difference to ngspice {err(ideal):.2e}  (ohmic, no wires)")
    return 0


def bench(sizes: list[tuple[int, int]], spice_max: int, sparse_max: int, seed: int) -> int:
    """Seconds per tile of the block and sparse solvers and ngspice, and ms for an ideal read of 1000
    inputs, for random 1–12 kΩ tiles (rows, cols) with 1 Ω wires (torch threads as configured)."""
    from .irdrop import transfer_conductance
    from .ngspice import find_ngspice, simulate_tile

    def best(f, k):
        out = float("inf")
        for _ in range(k):
            t0 = time.perf_counter()
            f()
            out = min(out, time.perf_counter() - t0)
        return out

    gen = torch.Generator().manual_seed(seed)
    transfer_conductance(torch.full((1, 2, 2), 1e-3, dtype=torch.float64), 1.0, 1.0, solver="sparse")  # imports
    print(f"torch threads: {torch.get_num_threads()}")
    print("tile       block s/tile  sparse s/tile  ideal read of 1000 inputs (ms)  ngspice s/tile")
    for R, C in sizes:
        batch = max(1, 512 // max(R, C))
        g = 1.0 / (1e3 + 11e3 * torch.rand(batch, R, C, generator=gen, dtype=torch.float64))
        tb = best(lambda: transfer_conductance(g, 1.0, 1.0, solver="block"), 3) / batch
        ts = best(lambda: transfer_conductance(g[:1], 1.0, 1.0, solver="sparse"), 1) if max(R, C) <= sparse_max else None
        x = torch.rand(1000, R, generator=gen, dtype=torch.float64)
        tr = best(lambda: x @ g[0], 5) * 1e3
        tsp = None
        if max(R, C) <= spice_max and find_ngspice():
            tsp = best(lambda: simulate_tile(g[0], 0.2 * x[0], 1e3, 1.0, 1.0, timeout=600), 1)
        fmt = lambda v, w, p: (f"{v:{w}.{p}f}" if v is not None else "—".rjust(w))  # noqa: E731
        print(f"{f'{R}x{C}':<10} {fmt(tb, 12, 4)}  {fmt(ts, 13, 3)}  {fmt(tr, 30, 3)}  {fmt(tsp, 14, 2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
