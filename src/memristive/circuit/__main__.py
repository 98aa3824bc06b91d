"""``python -m memristive.circuit``: check the simulator against ngspice on a random tile.

    python -m memristive.circuit --rows 64 --cols 32 --r-row 2 --r-col 2 --netlist tile.cir

Draws conductances uniformly in resistance between ``--r-min`` and ``--r-max`` ohms and input
voltages in ``[0, --v-max]``, writes the netlist (optional), runs ngspice, and prints the largest
relative difference per TIA output of the simulator's ideal read and of its line-resistance read.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from .irdrop import tia_outputs
from .netlist import tile_netlist
from .ngspice import CircuitError, run_ngspice


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
    ap.add_argument("--netlist", help="also write the netlist to this path")
    a = ap.parse_args(argv)
    if a.rows < 1 or a.cols < 1 or not 0 < a.r_min <= a.r_max:
        ap.error("need rows, cols >= 1 and 0 < r-min <= r-max")
    gen = torch.Generator().manual_seed(a.seed)
    g = 1.0 / (a.r_min + (a.r_max - a.r_min) * torch.rand(a.rows, a.cols, generator=gen, dtype=torch.float64))
    v = a.v_max * torch.rand(a.rows, generator=gen, dtype=torch.float64)
    net = tile_netlist(g, v, a.r_s, a.r_row, a.r_col)
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
    t0 = time.perf_counter()
    sim = tia_outputs(g, v[None], a.r_s, a.r_row, a.r_col)[0]
    t_sim = time.perf_counter() - t0
    ideal = tia_outputs(g, v[None], a.r_s)[0]
    err = lambda x: float(((x - spice).abs() / spice.abs()).max())  # noqa: E731
    print(f"{a.rows}x{a.cols} tile, r_row={a.r_row} ohm, r_col={a.r_col} ohm, R_s={a.r_s} ohm")
    print(f"ngspice            : {t_spice:.2f} s")
    print(f"simulator (wires)  : {t_sim * 1e3:.1f} ms, max relative difference to ngspice {err(sim):.2e}")
    print(f"simulator (ideal)  : max relative difference to ngspice {err(ideal):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
