"""Physical layout: how a crossbar's conductances sit on its tiles, and the IR-drop read matrix.

A weight matrix ``(inputs, outputs)`` is cut into tiles of ``tile.rows`` inputs and, per tile,
``tile.cols // 2`` weights (differential) or ``tile.cols − 1`` weights plus one reference column
(reference scheme); without a ``Tiling`` the whole matrix is one tile. Inside a tile:

* differential: physical columns interleave the pair of every weight, ``[G+_0, G−_0, G+_1, G−_1, …]``
  (the pair sits side by side, as in the calibration paper's 784×200 array);
* reference: the weights' columns first, the tile's reference column last (rightmost).

Row drivers sit at column 0's side of the tile, TIAs at the bottom (last row's side); see
:mod:`memristive.circuit.irdrop`. ``partial_tiles="pad"`` keeps partly used tiles at full size with
empty (G = 0) cells and 0 V on unused rows; ``"trim"`` shrinks them to the used size.

The weight-level read matrix with line resistance is ``M_eff[:, o] = M[:, pos(o)] − M[:, neg(o)]``
(``M`` the tile's transfer conductance), assembled over tiles to ``(trials, inputs, outputs)`` and used
by :meth:`memristive.crossbar.Crossbar.mvm` in place of ``G+ − G−``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .irdrop import LineResistance, transfer_conductance

__all__ = ["TileGeometry", "geometry", "physical_tiles", "effective_g_diff", "read_matrix", "tile_of"]


@dataclass(frozen=True)
class TileGeometry:
    inputs: int
    outputs: int
    scheme: str
    rows: int  # inputs per tile
    weights: int  # outputs (weights) per tile
    row_tiles: int
    col_tiles: int

    @property
    def phys_cols(self) -> int:
        """Physical columns of a full tile."""
        return 2 * self.weights if self.scheme == "differential" else self.weights + 1

    def used(self, rt: int, ct: int) -> tuple[int, int]:
        """Inputs and weights actually used by tile ``(rt, ct)``."""
        return (min(self.rows, self.inputs - rt * self.rows), min(self.weights, self.outputs - ct * self.weights))


def geometry(inputs: int, outputs: int, scheme: str, tile) -> TileGeometry:
    if tile is None:
        return TileGeometry(inputs, outputs, scheme, inputs, outputs, 1, 1)
    per = tile.cols // 2 if scheme == "differential" else tile.cols - 1
    return TileGeometry(inputs, outputs, scheme, tile.rows, per, math.ceil(inputs / tile.rows), math.ceil(outputs / per))


def _grid(g_pos: torch.Tensor, g_neg: torch.Tensor, geo: TileGeometry):
    """Weight-level tensors cut into tiles: ``(T, n_rt, rows, n_ct, weights)`` (zero padded) and the
    reference columns ``(T, n_rt, rows, n_ct, 1)`` (reference scheme) or the G− tensor likewise."""
    T = g_pos.shape[0]
    pr = geo.row_tiles * geo.rows - geo.inputs
    pc = geo.col_tiles * geo.weights - geo.outputs
    gp = torch.nn.functional.pad(g_pos, (0, pc, 0, pr)).reshape(T, geo.row_tiles, geo.rows, geo.col_tiles, geo.weights)
    if geo.scheme == "differential":
        gn = torch.nn.functional.pad(g_neg, (0, pc, 0, pr)).reshape(gp.shape)
    else:
        gn = torch.nn.functional.pad(g_neg, (0, 0, 0, pr)).reshape(T, geo.row_tiles, geo.rows, geo.col_tiles, 1)
    return gp, gn


def _physical(gp: torch.Tensor, gn: torch.Tensor, scheme: str, w_used: int, pad_cols: int) -> torch.Tensor:
    """Physical columns from weight-level slices ``(..., r, w)``: interleaved pairs or weights + ref."""
    gp = gp[..., :w_used]
    if scheme == "differential":
        phys = torch.stack([gp, gn[..., :w_used]], dim=-1).flatten(-2)
        if pad_cols > phys.shape[-1]:
            phys = torch.nn.functional.pad(phys, (0, pad_cols - phys.shape[-1]))
        return phys
    if pad_cols > w_used + 1:  # pad: empty columns between the used weights and the reference column
        gp = torch.nn.functional.pad(gp, (0, pad_cols - 1 - w_used))
    return torch.cat([gp, gn], dim=-1)


def _groups(geo: TileGeometry, partial: str):
    """Tile groups of equal physical shape: (row-tile slice, col-tile slice, rows, weights used)."""
    if partial == "pad":
        return [(slice(0, geo.row_tiles), slice(0, geo.col_tiles), geo.rows, geo.weights)]
    r_last, w_last = geo.used(geo.row_tiles - 1, geo.col_tiles - 1)
    rs = [(slice(0, geo.row_tiles - 1), geo.rows)] if geo.row_tiles > 1 else []
    rs.append((slice(geo.row_tiles - 1, geo.row_tiles), r_last))
    cs = [(slice(0, geo.col_tiles - 1), geo.weights)] if geo.col_tiles > 1 else []
    cs.append((slice(geo.col_tiles - 1, geo.col_tiles), w_last))
    return [(rsl, csl, r, w) for rsl, r in rs for csl, w in cs]


def physical_tiles(g_pos: torch.Tensor, g_neg: torch.Tensor, scheme: str, tile, partial: str = "pad"):
    """Physical conductance matrices of every tile, as a list of groups of equal shape.

    Returns ``[(row_tiles slice, col_tiles slice, G (T, n_rt', n_ct', R, C), weights used), ...]``
    (one group with ``partial="pad"``).
    """
    geo = geometry(g_pos.shape[1], g_pos.shape[2], scheme, tile)
    gp, gn = _grid(g_pos, g_neg, geo)
    out = []
    for rsl, csl, r, w in _groups(geo, partial):
        pad_cols = geo.phys_cols if partial == "pad" else 0
        a = gp[:, rsl, :r, csl].permute(0, 1, 3, 2, 4)  # (T, n_rt', n_ct', r, weights)
        b = gn[:, rsl, :r, csl].permute(0, 1, 3, 2, 4)
        out.append((rsl, csl, _physical(a, b, scheme, w, pad_cols), w))
    return out, geo


def effective_g_diff(g_pos: torch.Tensor, g_neg: torch.Tensor, scheme: str, tile, lr: LineResistance) -> torch.Tensor:
    """Weight-level read matrix with line resistance, ``(T, inputs, outputs)`` (``G+ − G−`` when ideal)."""
    groups, geo = physical_tiles(g_pos, g_neg, scheme, tile, lr.partial_tiles)
    T = g_pos.shape[0]
    full = torch.zeros(T, geo.row_tiles, geo.rows, geo.col_tiles, geo.weights, dtype=g_pos.dtype, device=g_pos.device)
    for rsl, csl, phys, w in groups:
        m = transfer_conductance(phys, lr.r_row, lr.r_col, solver=lr.solver, max_values=lr.max_values)
        if scheme == "differential":
            d = m[..., 0 : 2 * w : 2] - m[..., 1 : 2 * w : 2]
        else:
            d = m[..., :w] - m[..., -1:]
        r = phys.shape[-2]
        full[:, rsl, :r, csl, :w] = d.permute(0, 1, 3, 2, 4)
    full = full.reshape(T, geo.row_tiles * geo.rows, geo.col_tiles * geo.weights)
    return full[:, : geo.inputs, : geo.outputs].contiguous()


def read_matrix(xb) -> torch.Tensor:
    """What a read of crossbar ``xb`` multiplies the input voltages by, ``(T, inputs, outputs)``:
    ``G+ − G−`` without line resistance, else :func:`effective_g_diff` (cached by the crossbar until
    its conductances or settings change)."""
    return xb.read_matrix()


def tile_of(xb, trial: int = 0, tile: tuple[int, int] = (0, 0), partial: str | None = None) -> dict:
    """One physical tile of crossbar ``xb`` for circuit export.

    Returns ``G`` (R, C) float64, ``rows`` (the input indices on the tile's rows, ``-1`` = unused),
    ``outputs`` (list of ``(output index, pos column, neg column)``) and the geometry.
    """
    lr = getattr(xb.config, "line_resistance", None)
    partial = partial or (lr.partial_tiles if lr is not None else "pad")
    if not 0 <= trial < xb.trials:
        raise ValueError(f"trial={trial}: the crossbar holds trials 0..{xb.trials - 1}")
    geo = geometry(xb.in_features, xb.out_features, xb.config.mapping.scheme, xb.config.tile)
    rt, ct = tile
    if not (0 <= rt < geo.row_tiles and 0 <= ct < geo.col_tiles):
        raise ValueError(f"tile={tile}: the crossbar has {geo.row_tiles}×{geo.col_tiles} tiles")
    gp, gn = _grid(xb.g_pos[trial : trial + 1].detach(), xb.g_neg[trial : trial + 1].detach(), geo)
    r_used, w_used = geo.used(rt, ct)
    r = geo.rows if partial == "pad" else r_used
    w = w_used
    pad_cols = geo.phys_cols if partial == "pad" else 0
    G = _physical(gp[0, rt, :r, ct], gn[0, rt, :r, ct], geo.scheme, w, pad_cols).to(torch.float64)
    rows = [rt * geo.rows + i if i < r_used else -1 for i in range(r)]
    if geo.scheme == "differential":
        outs = [(ct * geo.weights + o, 2 * o, 2 * o + 1) for o in range(w)]
    else:
        outs = [(ct * geo.weights + o, o, G.shape[1] - 1) for o in range(w)]
    return {"G": G, "rows": rows, "outputs": outs, "geometry": geo, "tile": (rt, ct), "trial": trial}
