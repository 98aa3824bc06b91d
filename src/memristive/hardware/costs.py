"""The first-order cost formulas: small functions on numbers and tensors, one place each.

Units: joules, seconds, siemens, volts, µm². Notation: ``b`` bits, ``f_s`` sample rate, ``t_r`` read
pulse width, ``v_i`` the voltage on row ``i`` during one read, ``G_ij`` a cell's conductance.

* converter energy per conversion (Walden FOM, with the Schreier thermal floor and a speed corner;
  Murmann's ADC survey)::

      E_conv(b, f_s) = max(FOM_W · 2^b,  ½·10^((6.02·b + 1.76 − FOM_S)/10)) · max(1, f_s / f_corner)

* converter area ``A(b) = a_level · 2^b``;
* array read energy of one input vector (Joule heat in every cell; columns at virtual ground)::

      E_array = t_r · Σ_cycles Σ_i v_i² · Σ_j G_ij

* row-driver energy (charging the row wire, ``C_row = c_wire · cols``): ``Σ_cycles Σ_i C_row · v_i²``;
* bit-serial inputs: cycle ``k`` applies ``v_read`` to the rows whose code bit ``k`` is 1, so
  ``Σ_cycles v_i² = v_read² · popcount(code_i)``;
* a pulse train of ``n`` pulses of amplitude ``V`` and width ``t`` taking a cell linearly from
  ``G_0`` to ``G_1``: ``E = n · V² · t · (G_0 + G_1) / 2`` (trapezoid over the staircase);
* write-verify pulses from ``G_0`` to ``G_1`` with steps of ``ΔG``: ``n = ⌈|G_1 − G_0| / ΔG⌉``.
"""

from __future__ import annotations

import math

import torch

from .tech import ConverterTech

__all__ = ["converter_energy", "converter_area", "read_energy", "bit_serial_v2", "pulse_train_energy",
           "write_verify_pulses"]


def converter_energy(bits: int, conv: ConverterTech) -> float:
    """Energy of one conversion at ``bits`` bits, J."""
    if bits < 1:
        raise ValueError(f"bits={bits}: a converter has at least 1 bit")
    walden = conv.fom_walden * 2.0**bits
    thermal = 0.0
    if conv.fom_schreier_db is not None:
        thermal = 0.5 * 10 ** ((6.02 * bits + 1.76 - conv.fom_schreier_db) / 10)
    speed = max(1.0, conv.sample_rate / conv.corner_hz) if conv.corner_hz is not None else 1.0
    return max(walden, thermal) * speed


def converter_area(bits: int, conv: ConverterTech) -> float:
    """Area of one converter at ``bits`` bits, µm²."""
    if bits < 1:
        raise ValueError(f"bits={bits}: a converter has at least 1 bit")
    return conv.area_per_level * 2.0**bits


def read_energy(v2: torch.Tensor, g_row_sum: torch.Tensor, t_read: float) -> torch.Tensor:
    """Array read energy per input vector, ``(T, B)``.

    ``v2``: ``Σ_cycles v_i²`` per row, ``(T|1, B, rows)``; ``g_row_sum``: ``Σ_j G_ij`` over every
    physical cell of row ``i``, ``(T, rows)``.
    """
    return t_read * torch.matmul(v2.to(g_row_sum.dtype), g_row_sum.unsqueeze(-1)).squeeze(-1)


def bit_serial_v2(codes: torch.Tensor, v_read: float) -> torch.Tensor:
    """``Σ_cycles v²`` per row for non-negative integer input ``codes`` applied bit by bit."""
    c = codes.to(torch.int64)
    ones = torch.zeros_like(c)
    while bool((c > 0).any()):
        ones += c & 1
        c = c >> 1
    return ones.to(torch.get_default_dtype()) * v_read**2


def pulse_train_energy(n: torch.Tensor, v: float, width: float, g_before: torch.Tensor,
                       g_after: torch.Tensor) -> torch.Tensor:
    """Joule heat of ``n`` pulses taking a cell from ``g_before`` to ``g_after``, J (per cell)."""
    return n * (v * v * width) * (g_before + g_after) / 2


def write_verify_pulses(g_from: torch.Tensor, g_to: torch.Tensor, step: float) -> torch.Tensor:
    """Pulses of a write-verify loop with conductance steps of ``step`` siemens (per cell)."""
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"step={step}: must be a positive conductance step in siemens")
    # a tolerance of 1e-4 step keeps multiples of the step (programmed device levels, stored in float32)
    # at their exact pulse count
    return torch.ceil((g_to - g_from).abs() / step - 1e-4).clamp(min=0)
