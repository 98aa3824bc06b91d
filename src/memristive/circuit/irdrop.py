"""Line resistance (IR drop): the resistive network of a crossbar tile, solved exactly.

The network of one tile with ``R`` rows and ``C`` physical columns (cell conductance ``G_ij``)::

    driver k ──r_row── u(k,0) ──r_row── u(k,1) ── … ── u(k,C−1)        (row wire, open at the far end)
                         │G_k0             │G_k1
    (top, open)        w(k,0)            w(k,1)                          (column wires run downwards)
                         │r_col            │r_col
                        …                 …
                       w(R−1,0) ──r_col── TIA 0 (virtual ground)  …  w(R−1,j) ──r_col── TIA j

Every row has one wire segment ``r_row`` between its driver and the first cell and one between
neighbouring cells; every column has one segment ``r_col`` between neighbouring cells and one between
the last row and its transimpedance amplifier (TIA), whose inverting input is a virtual ground.
``r_row = r_col = 0`` is the ideal crossbar.

Because the network is linear and passive, the column currents are a linear map of the driver
voltages: ``I = V · M`` with the *short-circuit transfer conductance* ``M`` (R × C). Kirchhoff's
current law at the interior nodes ``x = (u, w)`` gives ``K x = B_D V`` (``K`` the nodal conductance
matrix with drivers and TIAs held at their potentials, ``B_D`` the driver → node couplings), and the
TIA currents are ``I = B_Tᵀ x + G_DTᵀ V``, so::

    M = G_DT + B_Dᵀ K⁻¹ B_T                                      (K symmetric positive definite)

``G_DT`` is the direct driver–TIA conductance (``G`` itself when both wire resistances are zero, else
0). Two exact solvers (``LineResistance.solver``):

``"block"`` (default; batched torch, runs wherever torch runs). Order the nodes column by column.
Each column's nodes ``w(:,j)`` touch only their own row nodes ``u(:,j)`` (through ``diag(G_:j)``)
and their TIA, so they are eliminated exactly with the tridiagonal SPD matrix
``W_j = g_c·T + diag(G_:j)`` (``g_c = 1/r_col``; ``T`` the path Laplacian, grounded at the TIA end;
its inverse in closed form in O(R²), see :func:`tridiag_inverse`)::

    A_j = g_r·d_j·I + diag(G_:j) − diag(G_:j) W_j⁻¹ diag(G_:j)     (d_j = 2, or 1 at the far end)
    a_j = diag(G_:j) W_j⁻¹ g_c e_last                              (I_j = a_jᵀ u(:,j))

leaving a block-tridiagonal system in the row voltages with off-diagonal blocks ``−g_r I``. Block
Cholesky elimination from the open far end, ``S_{C−1} = A_{C−1}``, ``S_j = A_j − g_r² S_{j+1}⁻¹``,
then the forward sweep ``U_0 = S_0⁻¹ g_r I``, ``U_j = S_j⁻¹ g_r U_{j−1}`` gives the row-node voltages
for a unit voltage on each driver, and ``M[:, j] = U_jᵀ a_j``. Cost ``≈ 3·R³·C`` flops per tile;
when ``R > C`` the network is solved transposed (rows and columns swap roles, by reciprocity
``M = flip(M'ᵀ)``), so the cost is ``3·min(R,C)³·max(R,C)``. All tiles and trials are one batch.

``"sparse"`` (cross-check). The full nodal matrix ``K`` as a SciPy sparse matrix, a whole batch of
tiles as one block-diagonal system, one SuperLU factorisation and ``min(R, C)`` right-hand sides
(``M = B_Dᵀ K⁻¹ B_T``, using ``K``'s symmetry). Float64 on the CPU; slower for large tiles.

With ``M`` known, a read costs exactly as much as the ideal ``V · G``: the crossbar caches ``M``
(per programming) and uses it in place of ``G``. A zero resistance on one kind of wire merges its
nodes into the drivers (``r_row = 0``) or the TIAs (``r_col = 0``), so those cases are exact too.
Both solvers work in float64; the result is returned in the input's dtype and device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..config import check

__all__ = ["LineResistance", "transfer_conductance", "tia_outputs", "tridiag_inverse"]


@dataclass
class LineResistance:
    """Wire resistance per segment (ohms) of the row and column lines of each tile.

    ``partial_tiles``: a partly filled tile keeps its full physical size with the unused cells empty
    (``"pad"``, the default: the wires are as long as the tile) or is treated as an array of just the
    used size (``"trim"``). ``solver``: ``"block"`` (batched block-tridiagonal Cholesky in torch, the
    default) or ``"sparse"`` (SciPy SuperLU), both exact. ``max_values`` bounds the memory of one
    batched solve in float64 values (5e7 ≈ 400 MB); larger batches are split.
    """

    r_row: float = 1.0
    r_col: float = 1.0
    partial_tiles: Literal["pad", "trim"] = "pad"
    solver: Literal["block", "sparse"] = "block"
    max_values: int = 50_000_000

    def __post_init__(self) -> None:
        for key in ("r_row", "r_col"):
            val = getattr(self, key)
            check(isinstance(val, (int, float)) and math.isfinite(val) and val >= 0,
                  f"line_resistance.{key}", val, "must be a finite wire resistance >= 0 ohms per segment")
        check(self.partial_tiles in ("pad", "trim"), "line_resistance.partial_tiles", self.partial_tiles,
              "must be 'pad' or 'trim'")
        check(self.solver in ("block", "sparse"), "line_resistance.solver", self.solver, "must be 'block' or 'sparse'")
        check(self.max_values >= 1, "line_resistance.max_values", self.max_values, "must be >= 1")

    @property
    def ideal(self) -> bool:
        return self.r_row == 0 and self.r_col == 0


# ---------------------------------------------------------------------------------------------- solver
def _structure(R: int, C: int, r_row: float, r_col: float):
    """Index structure of one tile's network (the same for every tile of a batch).

    Returns ``n`` (interior nodes), interior edges ``(a, b, kind)`` where kind 0 = row segment,
    1 = column segment, 2 = cell (value G), and the port couplings (node, port, kind) for drivers
    and TIAs.
    """
    cell = np.arange(R * C).reshape(R, C)
    has_u, has_w = r_row > 0, r_col > 0
    n_u = R * C if has_u else 0
    u = cell if has_u else None
    w = n_u + cell if has_w else None
    n = n_u + (R * C if has_w else 0)
    ea, eb, ek = [], [], []
    # interior edges
    if has_u and C > 1:
        ea.append(u[:, :-1].ravel()); eb.append(u[:, 1:].ravel()); ek.append(np.zeros((R * (C - 1),), np.int64))
    if has_w and R > 1:
        ea.append(w[:-1, :].ravel()); eb.append(w[1:, :].ravel()); ek.append(np.ones((C * (R - 1),), np.int64))
    if has_u and has_w:
        ea.append(u.ravel()); eb.append(w.ravel()); ek.append(np.full((R * C,), 2, np.int64))
    cat = (lambda xs, dt=np.int64: np.concatenate(xs) if xs else np.zeros((0,), dt))
    edges = (cat(ea), cat(eb), cat(ek))
    # couplings to drivers (port index = row k) and TIAs (port index = column j):
    # (node, port, kind, cell index or -1)
    if has_u:
        drv = (u[:, 0], np.arange(R), np.zeros(R, np.int64), -np.ones(R, np.int64))
    elif has_w:  # rows merged into their drivers: every cell couples its column node to driver i
        drv = (w.ravel(), np.repeat(np.arange(R), C), np.full(R * C, 2, np.int64), cell.ravel())
    else:
        drv = None
    if has_w:
        tia = (w[-1, :], np.arange(C), np.ones(C, np.int64), -np.ones(C, np.int64))
    elif has_u:  # columns merged into their TIAs: every cell couples its row node to TIA j
        tia = (u.ravel(), np.tile(np.arange(C), R), np.full(R * C, 2, np.int64), cell.ravel())
    else:
        tia = None
    return n, edges, drv, tia


def _values(kind: np.ndarray, cell_idx: np.ndarray, g: np.ndarray, g_r: float, g_c: float) -> np.ndarray:
    """Conductance of each edge for every tile: ``(n_tiles, n_edges)``."""
    out = np.empty((g.shape[0], kind.shape[0]))
    out[:, kind == 0] = g_r
    out[:, kind == 1] = g_c
    sel = kind == 2
    if sel.any():
        out[:, sel] = g[:, cell_idx[sel]]
    return out


def _coupling_matrix(n_tiles: int, n: int, n_ports: int, coup, vals: np.ndarray, stack: bool):
    """Sparse node→port couplings. ``stack=True``: all tiles share the port columns (rows stacked);
    ``False``: block-diagonal (tile-major port index)."""
    import scipy.sparse as sp

    node, port, _, _ = coup
    offs = (np.arange(n_tiles) * n)[:, None]
    rows = (node[None, :] + offs).ravel()
    if stack:
        cols = np.broadcast_to(port[None, :], (n_tiles, port.shape[0])).ravel()
        shape = (n_tiles * n, n_ports)
    else:
        cols = (port[None, :] + (np.arange(n_tiles) * n_ports)[:, None]).ravel()
        shape = (n_tiles * n, n_tiles * n_ports)
    return sp.csr_matrix((vals.ravel(), (rows, cols)), shape=shape)


def _solve_batch(g: np.ndarray, r_row: float, r_col: float, max_rhs_values: int) -> np.ndarray:
    """Sparse-LU solver for a batch ``g`` (n, R, C); see the module docstring."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    n_tiles, R, C = g.shape
    g_r = 1.0 / r_row if r_row > 0 else math.inf
    g_c = 1.0 / r_col if r_col > 0 else math.inf
    n, (ea, eb, ek), drv, tia = _structure(R, C, r_row, r_col)
    gf = g.reshape(n_tiles, R * C)
    # cell index of cell edges: the cell (i, j) whose u/w nodes the edge joins
    e_cell = np.where(ek == 2, ea if r_row > 0 else -1, -1)
    ev = _values(ek, e_cell, gf, g_r, g_c)
    dv = _values(drv[2], drv[3], gf, g_r, g_c)
    tv = _values(tia[2], tia[3], gf, g_r, g_c)
    out = np.empty((n_tiles, R, C))
    # chunk the batch so the dense right-hand side stays within max_rhs_values
    n_rhs = min(R, C)
    per_tile = n * n_rhs
    chunk = max(1, int(max_rhs_values // max(per_tile, 1)))
    col_chunk = n_rhs if per_tile <= max_rhs_values else max(1, int(max_rhs_values // n))
    for s in range(0, n_tiles, chunk):
        e = min(n_tiles, s + chunk)
        m = e - s
        offs = (np.arange(m) * n)[:, None]
        a = (ea[None, :] + offs).ravel()
        b = (eb[None, :] + offs).ravel()
        v = ev[s:e].ravel()
        # diagonal: sum of all conductances at each node (interior edges + port couplings)
        diag = np.zeros(m * n)
        np.add.at(diag, a, v)
        np.add.at(diag, b, v)
        np.add.at(diag, (drv[0][None, :] + offs).ravel(), dv[s:e].ravel())
        np.add.at(diag, (tia[0][None, :] + offs).ravel(), tv[s:e].ravel())
        idx = np.arange(m * n)
        K = sp.csc_matrix(
            (np.concatenate([-v, -v, diag]), (np.concatenate([a, b, idx]), np.concatenate([b, a, idx]))),
            shape=(m * n, m * n),
        )
        lu = splu(K, permc_spec="MMD_AT_PLUS_A")
        if R <= C:  # X = K⁻¹ B_D (R columns, shared by all tiles);  M = (B_Tᵀ X)ᵀ
            rhs_c, out_c, n_out = drv, tia, C
            rhs_v, out_v = dv[s:e], tv[s:e]
        else:  # Y = K⁻¹ B_T (C columns);  M = B_Dᵀ Y
            rhs_c, out_c, n_out = tia, drv, R
            rhs_v, out_v = tv[s:e], dv[s:e]
        B_in = _coupling_matrix(m, n, n_rhs, rhs_c, rhs_v, stack=True)
        B_out = _coupling_matrix(m, n, n_out, out_c, out_v, stack=False).T.tocsr()
        res = np.empty((m * n_out, n_rhs))
        for c0 in range(0, n_rhs, col_chunk):
            c1 = min(n_rhs, c0 + col_chunk)
            x = lu.solve(np.asfortranarray(B_in[:, c0:c1].toarray()))
            res[:, c0:c1] = B_out @ x
        res = res.reshape(m, n_out, n_rhs)
        out[s:e] = res.transpose(0, 2, 1) if R <= C else res
    return out


def tridiag_inverse(d: torch.Tensor, c: float) -> torch.Tensor:
    """Inverse of SPD tridiagonal matrices with diagonal ``d`` (…, R) and off-diagonal ``−c``, O(R²).

    Pivots from the top ``p_0 = d_0, p_i = d_i − c²/p_{i−1}`` and from the bottom ``q_{R−1} = d_{R−1},
    q_i = d_i − c²/q_{i+1}`` give the diagonal ``D_i = 1/(p_i + q_i − d_i)`` and, for ``i ≤ j``,
    ``(W⁻¹)_ij = D_j·Π_{k=i}^{j−1} c/p_k`` (symmetric); the products are taken as exponentials of
    cumulative log sums (``c/p_k < 1``, so nothing overflows).
    """
    R = d.shape[-1]
    p = torch.empty_like(d)
    q = torch.empty_like(d)
    p[..., 0] = d[..., 0]
    q[..., R - 1] = d[..., R - 1]
    for i in range(1, R):
        p[..., i] = d[..., i] - c * c / p[..., i - 1]
        q[..., R - 1 - i] = d[..., R - 1 - i] - c * c / q[..., R - i]
    diag = 1.0 / (p + q - d)
    logr = torch.log(c / p)
    L = torch.cumsum(torch.cat([torch.zeros_like(logr[..., :1]), logr[..., :-1]], -1), -1)  # L_i = Σ_{k<i}
    expo = L.unsqueeze(-2) - L.unsqueeze(-1)  # [i, j] = L_j − L_i  (≤ 0 for i ≤ j)
    upper = diag.unsqueeze(-2) * torch.exp(expo.clamp(max=0))  # D_j·exp(L_j − L_i), valid for i ≤ j
    return torch.where(torch.ones(R, R, dtype=torch.bool, device=d.device).triu(), upper, upper.transpose(-1, -2))


def _block_batch(g: torch.Tensor, r_row: float, r_col: float) -> torch.Tensor:
    """Block-tridiagonal solver for a batch ``g`` (n, R, C) in float64; see the module docstring."""
    n, R, C = g.shape
    dt, dev = g.dtype, g.device
    gcol = g.transpose(1, 2)  # (n, C, R): column j's cells
    if r_col > 0:
        g_c = 1.0 / r_col
        deg = torch.full((R,), 2.0, dtype=dt, device=dev)
        deg[0] = 1.0  # the top node has one neighbour below (the bottom one has the TIA)
        Winv = tridiag_inverse(g_c * deg + gcol, g_c)  # (n, C, R, R)
        a = gcol * (g_c * Winv[..., :, R - 1])  # (n, C, R): a_j = diag(G) W⁻¹ g_c e_last
        if r_row == 0:  # row nodes are the drivers themselves
            return a.transpose(1, 2).contiguous()
        A = -(gcol.unsqueeze(-1) * Winv * gcol.unsqueeze(-2))
        del Winv
        A.diagonal(dim1=-2, dim2=-1).add_(gcol)
    else:  # column nodes are the TIA inputs (0 V): I_j = Σ_i G_ij u(i, j)
        a = gcol
        A = torch.diag_embed(gcol)
    g_r = 1.0 / r_row
    deg_u = torch.full((C,), 2.0, dtype=dt, device=dev)
    deg_u[-1] = 1.0  # the far end of a row is open
    A.diagonal(dim1=-2, dim2=-1).add_((g_r * deg_u)[None, :, None])
    # backward sweep from the open far end: S_j = A_j − g_r² S_{j+1}⁻¹ (kept as inverses, in place of A)
    for j in range(C - 1, -1, -1):
        S = A[:, j] if j == C - 1 else A[:, j] - (g_r * g_r) * A[:, j + 1]
        A[:, j] = torch.cholesky_inverse(torch.linalg.cholesky(S))
    M = torch.empty(n, C, 1, R, dtype=dt, device=dev)
    U = g_r * A[:, 0]  # row-node voltages for a unit voltage on each driver (columns)
    M[:, 0] = torch.matmul(a[:, 0, None, :], U)
    for j in range(1, C):
        U = g_r * torch.matmul(A[:, j], U)
        M[:, j] = torch.matmul(a[:, j, None, :], U)
    return M.squeeze(2).transpose(1, 2)


def _block_solve(g: torch.Tensor, r_row: float, r_col: float, max_values: int) -> torch.Tensor:
    n, R, C = g.shape
    if R > C:  # solve the transposed network: rows <-> columns (reciprocity), far ends flipped
        gt = torch.flip(g.transpose(1, 2), dims=(1, 2))
        return torch.flip(_block_solve(gt, r_col, r_row, max_values).transpose(1, 2), dims=(1, 2))
    per_tile = 2 * C * R * R + 4 * R * R  # A (and W⁻¹) plus a few (R, R) blocks
    chunk = max(1, int(max_values // per_tile))
    return torch.cat([_block_batch(g[s : s + chunk], r_row, r_col) for s in range(0, n, chunk)])


def transfer_conductance(g: torch.Tensor, r_row: float, r_col: float, solver: str = "block",
                         max_values: int = 50_000_000) -> torch.Tensor:
    """Short-circuit transfer conductance ``M`` (…, R, C) of tiles with conductances ``g`` (…, R, C).

    ``I_TIA = V_driver · M`` (amperes per volt); ``M = g`` when both wire resistances are zero. Any
    leading dimensions (trials, tiles) are solved together as one batch (split only by memory).
    """
    if g.dim() < 2:
        raise ValueError(f"g: expected (..., rows, cols), got shape {tuple(g.shape)}")
    check(math.isfinite(r_row) and r_row >= 0, "r_row", r_row, "must be >= 0 ohms")
    check(math.isfinite(r_col) and r_col >= 0, "r_col", r_col, "must be >= 0 ohms")
    check(solver in ("block", "sparse"), "solver", solver, "must be 'block' or 'sparse'")
    if r_row == 0 and r_col == 0:
        return g.clone()
    if not torch.isfinite(g).all():
        raise ValueError("g: conductances contain NaN or infinite values")
    if (g < 0).any():
        raise ValueError(f"g: negative conductance {float(g.min()):.3g} S; a resistive network needs G >= 0")
    lead, (R, C) = g.shape[:-2], g.shape[-2:]
    g64 = g.detach().reshape(-1, R, C).to(torch.float64)
    if solver == "block":
        m = _block_solve(g64, float(r_row), float(r_col), int(max_values))
    else:
        m = torch.from_numpy(_solve_batch(g64.cpu().numpy(), float(r_row), float(r_col), int(max_values) // 2))
    return m.reshape(*lead, R, C).to(device=g.device, dtype=g.dtype)


def tia_outputs(g: torch.Tensor, v: torch.Tensor, r_s: float, r_row: float = 0.0, r_col: float = 0.0,
                solver: str = "block") -> torch.Tensor:
    """Simulated TIA output voltages of tiles ``g`` (…, R, C) for driver voltages ``v`` (…, B, R):
    ``V_out = −R_s · v · M`` (the amplifiers invert; compare with a SPICE run of the same tile)."""
    m = transfer_conductance(g, r_row, r_col, solver=solver)
    return -r_s * torch.matmul(v.to(m.dtype), m)
