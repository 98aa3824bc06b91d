"""Crossbar reads with a nonlinear cell I–V ``I = f(V, G)``, with and without line resistance.

Without wire resistance every cell sees its row's driver voltage, so column ``j`` collects
``I_j = Σ_i f(V_i, G_ij)``; for the separable relations of :mod:`memristive.devices.iv`
(``f = G·h(V)``) that is one matmul, ``h(V)·G``.

With wire resistance (same network as :mod:`memristive.circuit.irdrop`: row nodes ``u(i,j)``,
column nodes ``w(i,j)``, a segment ``r_row`` between the driver and the first cell and between
neighbours, a segment ``r_col`` between neighbours and from the last row to the TIA's virtual ground)
the node voltages solve Kirchhoff's current law, now nonlinear. Residuals (currents leaving a node)::

    F_u(i,j) = g_r·(u(i,j) − u(i,j−1)) + g_r·(u(i,j) − u(i,j+1)) + f(u(i,j) − w(i,j), G_ij)
    F_w(i,j) = −f(u(i,j) − w(i,j), G_ij) + g_c·(w(i,j) − w(i−1,j)) + g_c·(w(i,j) − w(i+1,j))

with ``u(i,−1) = V_i`` (driver), no ``u(i,C)`` term (open far end), no ``w(−1,j)`` term (open top),
``w(R,j) = 0`` (TIA). The column current is ``I_j = g_c·w(R−1,j)``.

Newton's method: the Jacobian is the *linear* network of the same structure with every cell
replaced by its differential conductance ``D_ij = ∂f/∂V`` at the current iterate, so each step is
solved like the linear IR-drop network, column block by column block, batched over tiles, trials and
input vectors (every input vector has its own operating point, hence its own Jacobian). Per column
``j`` the column nodes are eliminated with the tridiagonal SPD ``W_j = g_c·T + diag(D_:j)`` (inverse
in closed form, :func:`memristive.circuit.irdrop.tridiag_inverse`)::

    δw_j = W_j⁻¹ (r_w,j + D_j δu_j)
    A_j  = g_r·d_j·I + D_j − D_j W_j⁻¹ D_j,   b_j = r_u,j + D_j W_j⁻¹ r_w,j     (r = −F, d_j = 2, 1 at the far end)

leaving the block-tridiagonal system ``A_j x_j − g_r x_{j−1} − g_r x_{j+1} = b_j`` in the row nodes,
eliminated from the open far end (``S_{C−1} = A_{C−1}``, ``S_j = A_j − g_r² S_{j+1}⁻¹``,
``y_j = b_j + g_r S_{j+1}⁻¹ y_{j+1}``) and swept forward (``x_j = S_j⁻¹ (y_j + g_r x_{j−1})``).
Cost per Newton step ``≈ 3·R³·C`` flops per (tile, trial, input vector). With ``r_col = 0`` the
column nodes are the TIAs' virtual ground and every row is an independent chain (tridiagonal
Jacobian ``g_r·T + diag(D_i:)``); with ``r_row = 0`` every column is one (``g_c·T + diag(D_:j)``). The start is the ideal
crossbar (``u = V``, ``w = 0``); a step that does not reduce the largest residual is halved (up to
30 times; the cell currents are monotone in V, the step is a descent direction). Iteration stops
when the largest update is below ``rtol·max|V|``. float64 throughout.
"""

from __future__ import annotations

import math

import torch

from ..config import check
from ..devices.iv import iv_from_spec
from .irdrop import tridiag_inverse

__all__ = ["nonlinear_currents", "nonlinear_read", "NewtonError"]


class NewtonError(RuntimeError):
    """The Newton iteration did not converge; the message says how far it got."""


def _residual(u, w, v, g, iv, g_r, g_c):
    """KCL residuals; a zero wire conductance means that kind of node is not an unknown (residual 0)."""
    vc = u - w
    i_cell = iv.current(vc, g)
    if g_r > 0:
        left = torch.cat([v.unsqueeze(-1), u[..., :-1]], dim=-1)
        f_u = g_r * (u - left) + i_cell
        f_u[..., :-1] += g_r * (u[..., :-1] - u[..., 1:])
    else:
        f_u = torch.zeros_like(u)
    if g_c > 0:
        down = torch.cat([w[..., 1:, :], torch.zeros_like(w[..., :1, :])], dim=-2)
        f_w = -i_cell + g_c * (w - down)
        f_w[..., 1:, :] += g_c * (w[..., 1:, :] - w[..., :-1, :])
    else:
        f_w = torch.zeros_like(w)
    return f_u, f_w, vc


def _chain_step(d, r, g_wire, far_open_last: bool):
    """One wire kind only: independent chains along the last axis of ``d``/``r`` (…, n), matrix
    ``g_wire·T + diag(d)`` with T the path Laplacian (degree 2, one end of degree 1)."""
    n = d.shape[-1]
    deg = torch.full((n,), 2.0, dtype=d.dtype, device=d.device)
    deg[-1 if far_open_last else 0] = 1.0
    inv = tridiag_inverse(g_wire * deg + d, g_wire)
    return torch.matmul(inv, r.unsqueeze(-1)).squeeze(-1)


def _newton_step(d, r_u, r_w, g_r, g_c):
    """Solve ``J δ = r`` for a batch (S, R, C) of networks with cell conductances ``d``."""
    S, R, C = d.shape
    dt, dev = d.dtype, d.device
    dc = d.transpose(1, 2)  # (S, C, R)
    deg = torch.full((R,), 2.0, dtype=dt, device=dev)
    deg[0] = 1.0  # the top node has one neighbour below (the bottom one has the TIA)
    winv = tridiag_inverse(g_c * deg + dc, g_c)  # (S, C, R, R)
    rw = r_w.transpose(1, 2)  # (S, C, R)
    winv_rw = torch.matmul(winv, rw.unsqueeze(-1)).squeeze(-1)
    b = r_u.transpose(1, 2) + dc * winv_rw
    A = -(dc.unsqueeze(-1) * winv * dc.unsqueeze(-2))
    deg_u = torch.full((C,), 2.0, dtype=dt, device=dev)
    deg_u[-1] = 1.0
    A.diagonal(dim1=-2, dim2=-1).add_(dc + (g_r * deg_u)[None, :, None])
    y = b.clone()
    for j in range(C - 1, -1, -1):  # S_j⁻¹ kept in place of A_j
        if j < C - 1:
            A[:, j] -= (g_r * g_r) * A[:, j + 1]
            y[:, j] += g_r * torch.matmul(A[:, j + 1], y[:, j + 1].unsqueeze(-1)).squeeze(-1)
        A[:, j] = torch.cholesky_inverse(torch.linalg.cholesky(A[:, j]))
    x = torch.empty_like(b)
    x[:, 0] = torch.matmul(A[:, 0], y[:, 0].unsqueeze(-1)).squeeze(-1)
    for j in range(1, C):
        x[:, j] = torch.matmul(A[:, j], (y[:, j] + g_r * x[:, j - 1]).unsqueeze(-1)).squeeze(-1)
    dw = torch.matmul(winv, (rw + dc * x).unsqueeze(-1)).squeeze(-1)
    return x.transpose(1, 2), dw.transpose(1, 2)


def _solve_wires(g, v, iv, r_row, r_col, rtol, max_iter):
    """Newton solve for a batch: g (S, R, C), v (S, R) -> column currents (S, C), iterations."""
    g_r = 1.0 / r_row if r_row > 0 else 0.0
    g_c = 1.0 / r_col if r_col > 0 else 0.0
    S, R, C = g.shape

    def step_of(d, r_u, r_w):
        if g_r > 0 and g_c > 0:
            return _newton_step(d, r_u, r_w, g_r, g_c)
        if g_r > 0:  # columns at the TIAs' virtual ground: every row is a chain, open at its far end
            return _chain_step(d, r_u, g_r, far_open_last=True), torch.zeros_like(r_w)
        # rows at their drivers: every column is a chain, open at the top, TIA below the last row
        dw = _chain_step(d.transpose(1, 2), r_w.transpose(1, 2), g_c, far_open_last=False).transpose(1, 2)
        return torch.zeros_like(r_u), dw

    def column_currents(w, vc):
        return g_c * w[:, R - 1, :] if g_c > 0 else iv.current(vc, g).sum(1)

    u = v.unsqueeze(-1).expand(S, R, C).clone()
    w = torch.zeros_like(u)
    vmax = v.abs().amax(dim=-1).clamp(min=1e-300)  # (S,)
    f_u, f_w, vc = _residual(u, w, v, g, iv, g_r, g_c)
    norm = torch.maximum(f_u.abs().amax((1, 2)), f_w.abs().amax((1, 2)))
    active = torch.ones(S, dtype=torch.bool, device=g.device)
    for it in range(1, max_iter + 1):
        d = iv.differential(vc, g)
        du, dw = step_of(d, -f_u, -f_w)
        lam = torch.ones(S, dtype=g.dtype, device=g.device)
        for _ in range(30):  # backtracking on the largest residual
            l3 = lam.view(S, 1, 1)
            nu, nw = u + l3 * du, w + l3 * dw
            nf_u, nf_w, nvc = _residual(nu, nw, v, g, iv, g_r, g_c)
            nnorm = torch.maximum(nf_u.abs().amax((1, 2)), nf_w.abs().amax((1, 2)))
            worse = (nnorm > norm) & (lam > 2.0 ** -29) & ~(nnorm <= 1e-300)
            step_small = torch.maximum(du.abs().amax((1, 2)), dw.abs().amax((1, 2))) <= rtol * vmax
            worse &= ~step_small  # at the noise floor a tiny step may not reduce the residual
            if not bool(worse.any()):
                break
            lam = torch.where(worse, lam / 2, lam)
        u, w, f_u, f_w, vc, norm = nu, nw, nf_u, nf_w, nvc, nnorm
        step = (lam * torch.maximum(du.abs().amax((1, 2)), dw.abs().amax((1, 2))))
        active = step > rtol * vmax
        if not bool(active.any()):
            return column_currents(w, vc), it
    worst = float((step / vmax).max())
    raise NewtonError(f"nonlinear IR-drop solve: no convergence after {max_iter} Newton steps "
                      f"(largest relative update {worst:.3g}, need <= {rtol:g}); lower the nonlinearity or the "
                      "read voltage, or raise max_iter")


def nonlinear_currents(g: torch.Tensor, v: torch.Tensor, iv=None, r_row: float = 0.0, r_col: float = 0.0,
                       rtol: float = 1e-11, max_iter: int = 50, max_values: int = 20_000_000,
                       return_iterations: bool = False):
    """Column currents ``(…, B, C)`` of tiles ``g`` (…, R, C) read with driver voltages ``v`` (…, B, R).

    ``iv``: an I–V relation (:mod:`memristive.devices.iv`; ``None`` = ohmic). Without wire resistance the
    currents are ``Σ_i f(V_i, G_ij)``; with ``r_row > 0`` and ``r_col > 0`` the nonlinear network is
    solved by Newton's method (see the module docstring; one wire resistance 0 merges those nodes into the
    drivers or the TIAs, leaving independent chains). Leading dimensions of ``g`` and ``v`` broadcast
    (``v`` may also be just ``(B, R)``). ``max_values`` bounds one batched solve's float64 values.
    """
    iv = iv_from_spec(iv)
    if g.dim() < 2 or v.dim() < 1:
        raise ValueError(f"g: expected (..., rows, cols) and v (..., batch, rows), got {tuple(g.shape)}, {tuple(v.shape)}")
    if v.dim() == 1:
        v = v.unsqueeze(0)
    R, C = g.shape[-2:]
    if v.shape[-1] != R:
        raise ValueError(f"v: last dimension {v.shape[-1]} != the tiles' {R} rows")
    check(math.isfinite(r_row) and r_row >= 0, "r_row", r_row, "must be >= 0 ohms")
    check(math.isfinite(r_col) and r_col >= 0, "r_col", r_col, "must be >= 0 ohms")
    check(rtol > 0, "rtol", rtol, "must be > 0")
    check(isinstance(max_iter, int) and max_iter >= 1, "max_iter", max_iter, "must be an integer >= 1")
    if not (torch.isfinite(g).all() and torch.isfinite(v).all()):
        raise ValueError("g and v must be finite")
    if (g < 0).any():
        raise ValueError(f"g: negative conductance {float(g.min()):.3g} S; a cell needs G >= 0")
    if r_row == 0 and r_col == 0:
        out = torch.matmul(iv.shape(v.to(g.dtype)), g)
        return (out, 0) if return_iterations else out
    lead = torch.broadcast_shapes(g.shape[:-2], v.shape[:-2])
    B = v.shape[-2]
    g64 = g.detach().to(torch.float64).expand(*lead, R, C).unsqueeze(-3).expand(*lead, B, R, C).reshape(-1, R, C)
    v64 = v.detach().to(torch.float64).expand(*lead, B, R).reshape(-1, R)
    per = 3 * C * R * R + 8 * R * C
    chunk = max(1, int(max_values // per))
    outs, iters = [], 0
    for s in range(0, g64.shape[0], chunk):
        o, it = _solve_wires(g64[s : s + chunk], v64[s : s + chunk], iv, float(r_row), float(r_col), rtol, max_iter)
        outs.append(o)
        iters = max(iters, it)
    out = torch.cat(outs).reshape(*lead, B, C).to(device=g.device, dtype=g.dtype)
    return (out, iters) if return_iterations else out


def nonlinear_read(g_pos: torch.Tensor, g_neg: torch.Tensor, scheme: str, tile, v: torch.Tensor, iv=None,
                   r_row: float = 0.0, r_col: float = 0.0, partial_tiles: str = "pad", per_row_tile: bool = False,
                   **solver) -> torch.Tensor:
    """Weight-level output currents ``I_pos − I_neg`` ``(T, B, outputs)`` of a crossbar's conductances
    (``g_pos`` ``(T, inputs, outputs)``, ``g_neg`` likewise or the reference columns) read with input
    voltages ``v`` ``(B, inputs)`` or ``(T|1, B, inputs)``, every tile solved with the nonlinear I–V
    (:func:`nonlinear_currents`); row tiles' partial sums add, as in the linear read
    (``per_row_tile=True``: kept apart, ``(T, row_tiles, B, outputs)``, for per-tile ADCs)."""
    from .layout import physical_tiles

    if v.dim() == 2:
        v = v.unsqueeze(0)
    groups, geo = physical_tiles(g_pos, g_neg, scheme, tile, partial_tiles)
    T, B = g_pos.shape[0], v.shape[1]
    if v.shape[-1] != geo.inputs:
        raise ValueError(f"v: {v.shape[-1]} inputs for a crossbar with {geo.inputs}")
    pad = geo.row_tiles * geo.rows - geo.inputs
    vt = torch.nn.functional.pad(v, (0, pad)).reshape(v.shape[0], B, geo.row_tiles, geo.rows)
    out = torch.zeros(T, geo.row_tiles, B, geo.col_tiles, geo.weights, dtype=g_pos.dtype, device=g_pos.device)
    for rsl, csl, phys, w in groups:
        r = phys.shape[-2]
        vg = vt[:, :, rsl, :r].permute(0, 2, 1, 3).unsqueeze(2)  # (T|1, n_rt', 1, B, r)
        cur = nonlinear_currents(phys, vg, iv, r_row, r_col, **solver)  # (T, n_rt', n_ct', B, C)
        d = cur[..., 0 : 2 * w : 2] - cur[..., 1 : 2 * w : 2] if scheme == "differential" else cur[..., :w] - cur[..., -1:]
        out[:, rsl, :, csl, :w] += d.permute(0, 1, 3, 2, 4)
    out = out.reshape(T, geo.row_tiles, B, -1)[..., : geo.outputs]
    return out if per_row_tile else out.sum(1)
