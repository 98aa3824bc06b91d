"""Circuit level: line resistance (IR drop) in the simulator, SPICE netlist export and ngspice.

* :mod:`.irdrop`  — ``LineResistance`` config and the exact resistive-network solver (formulas there)
* :mod:`.layout`  — how conductances sit on physical tiles; the IR-drop read matrix of a crossbar
* :mod:`.netlist` — SPICE netlists of one tile (drivers, cells, wires, TIAs with ``R_s``)
* :mod:`.ngspice` — run ngspice in batch mode and read the outputs back
* :mod:`.nonlinear` — reads with a nonlinear cell I–V, with line resistance by Newton's method
"""

from .irdrop import LineResistance, tia_outputs, transfer_conductance
from .layout import effective_g_diff, physical_tiles, read_matrix, tile_of
from .netlist import Netlist, crossbar_netlist, tile_netlist, write_netlist
from .ngspice import CircuitError, find_ngspice, run_ngspice, simulate_crossbar, simulate_tile
from .nonlinear import NewtonError, nonlinear_currents, nonlinear_read

__all__ = [
    "LineResistance",
    "transfer_conductance",
    "tia_outputs",
    "effective_g_diff",
    "physical_tiles",
    "read_matrix",
    "tile_of",
    "Netlist",
    "tile_netlist",
    "crossbar_netlist",
    "write_netlist",
    "CircuitError",
    "find_ngspice",
    "run_ngspice",
    "simulate_tile",
    "simulate_crossbar",
    "NewtonError",
    "nonlinear_currents",
    "nonlinear_read",
]
