"""Run netlists through ngspice (batch mode) and read the TIA outputs back.

``ngspice`` is the Debian package of the same name (``make system-deps`` installs it); set
``MEMRISTIVE_NGSPICE`` to use another binary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from .netlist import Netlist, crossbar_netlist, tile_netlist

__all__ = ["CircuitError", "find_ngspice", "run_ngspice", "simulate_tile", "simulate_crossbar"]

_TROUBLE = re.compile(r"(?i)\berror\b|singular matrix|gmin stepping|source stepping|timestep too small")
_LINE = re.compile(r"^\s*v\(([^)]+)\)\s*=\s*([-+0-9.eE]+)\s*$", re.MULTILINE)


class CircuitError(RuntimeError):
    """ngspice is missing or failed; the message says what to do."""


def find_ngspice() -> str | None:
    """Path of the ngspice binary, or None."""
    env = os.environ.get("MEMRISTIVE_NGSPICE")
    if env:
        return env if Path(env).is_file() else None
    return shutil.which("ngspice")


def run_ngspice(net: Netlist | str, timeout: float = 300.0) -> dict[str, float]:
    """Run ``ngspice -b`` on a netlist (with its ``.control`` block) and return ``{node: volts}``."""
    exe = find_ngspice()
    if exe is None:
        raise CircuitError("ngspice not found: install the Debian package 'ngspice' (make system-deps) "
                           "or set MEMRISTIVE_NGSPICE to its path")
    text = net.text if isinstance(net, Netlist) else str(net)
    if ".control" not in text:
        raise CircuitError("the netlist has no .control block; build it with control=True")
    with tempfile.TemporaryDirectory(prefix="memristive-spice-") as d:
        path = Path(d) / "tile.cir"
        path.write_text(text)
        try:
            proc = subprocess.run([exe, "-b", str(path)], capture_output=True, text=True, timeout=timeout, cwd=d)
        except subprocess.TimeoutExpired:
            raise CircuitError(f"ngspice did not finish within {timeout} s") from None
    out = proc.stdout + "\n" + proc.stderr
    values = {m.group(1).lower(): float(m.group(2)) for m in _LINE.finditer(proc.stdout)}
    # a resistive network solves in one linear step: singular matrices, convergence aids or errors
    # mean the netlist is wrong, even when ngspice still prints numbers (it falls back to gmin stepping)
    trouble = _TROUBLE.search(proc.stderr)
    if proc.returncode != 0 or not values or trouble:
        tail = "\n".join(out.strip().splitlines()[-15:])
        why = f"'{trouble.group(0)}'" if trouble else f"exit {proc.returncode}"
        raise CircuitError(f"ngspice failed ({why}):\n{tail}")
    if isinstance(net, Netlist):
        missing = [n for n in net.output_nodes if n.lower() not in values]
        if missing:
            raise CircuitError(f"ngspice printed no value for {missing[:5]}{'…' if len(missing) > 5 else ''}")
    return values


def simulate_tile(G: torch.Tensor, v: torch.Tensor, r_s: float = 1e3, r_row: float = 0.0, r_col: float = 0.0,
                  opamp_gain: float = 1e9, timeout: float = 300.0, iv=None) -> torch.Tensor:
    """ngspice TIA output voltages of one tile, one per physical column ``(C,)`` (negative for a
    positive column current: the amplifiers invert). ``iv``: a nonlinear cell I–V
    (:mod:`memristive.devices.iv`), simulated with behavioural sources."""
    net = tile_netlist(G, v, r_s, r_row, r_col, opamp_gain, iv=iv)
    vals = run_ngspice(net, timeout)
    return torch.tensor([vals[n] for n in net.output_nodes], dtype=torch.float64)


def simulate_crossbar(xb, v_in: torch.Tensor, trial: int = 0, tile: tuple[int, int] = (0, 0),
                      r_row: float | None = None, r_col: float | None = None, opamp_gain: float = 1e9,
                      timeout: float = 300.0) -> dict:
    """Simulate one tile of crossbar ``xb`` in ngspice.

    Returns ``columns`` (TIA output per physical column, volts), ``outputs`` (the weight outputs of
    this tile, ``−(V_pos − V_neg)``, in the same sign convention as :meth:`Crossbar.mvm`) and
    ``output_index`` (which crossbar outputs they are). For a single-tile crossbar, ``outputs``
    equals ``xb.mvm(v_in)[trial, 0]`` up to the solver and op-amp tolerances.
    """
    net = crossbar_netlist(xb, v_in, trial=trial, tile=tile, r_row=r_row, r_col=r_col, opamp_gain=opamp_gain)
    vals = run_ngspice(net, timeout)
    cols = torch.tensor([vals[n] for n in net.output_nodes], dtype=torch.float64)
    outs = torch.stack([-(cols[p] - cols[n]) for _, p, n in net.outputs]) if net.outputs else cols[:0]
    return {"columns": cols, "outputs": outs, "output_index": [o for o, _, _ in net.outputs], "netlist": net}
