"""Convolutions on crossbars: ``CrossbarConv1d`` and ``CrossbarConv2d``.

A convolution is a matrix product on unrolled input patches (im2col): every output position reads
one patch ``(C_in/groups · k_h · k_w)`` of the (padded) input, and the array holds the kernel as a
``(C_in·k_h·k_w) × C_out`` matrix (rows in ``nn.Unfold``'s channel-major order, i.e. the
flattened ``weight[o]``). ``groups > 1`` are laid out block-diagonally on one array: group ``g``'s
rows meet only its own output columns, and the off-diagonal cells hold 0 (structural zeros, counted
in the cells of the report, like the fused GRU layout). Tiling, DAC/ADC and read noise are the
crossbar's (:class:`~memristive.crossbar.Crossbar`): an array larger than ``config.tile`` is split
into tiles whose partial sums are digitised by their own ADCs and added digitally.

Padding: ``padding`` (int, tuple, ``"same"``, ``"valid"``) with any ``padding_mode`` (``zeros``,
``reflect``, ``replicate``, ``circular``) is applied to the input before unrolling, exactly as
``torch.nn.Conv*d`` does (``"same"`` puts the odd extra element on the right). A ``Conv1d`` is the
``Conv2d`` of height 1.

Inputs ``(B, C, *spatial)`` (shared by all trials) or ``(T, B, C, *spatial)``; outputs
``(T, B, C_out, *spatial_out)``. When the array is a plain linear map (ideal converters, no read noise,
no wire resistance: device variation, stuck-at faults and levels are all programming-time effects) the
layer runs as one grouped ``conv2d`` of all trials with the arrays' effective kernels (same numbers,
the fast path); otherwise the unrolled patches go through :meth:`Crossbar.matmul`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..crossbar import CrossbarConfig
from .base import CrossbarMatrix, register_converter

__all__ = ["CrossbarConv1d", "CrossbarConv2d", "conv_matrix"]


def conv_matrix(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The array matrix ``(C_in·k, C_out)`` of a kernel ``(C_out, C_in/groups, *k)`` (block-diagonal
    over groups; differentiable)."""
    c_out = weight.shape[0]
    kg = weight[0].numel()
    w = weight.reshape(c_out, kg)
    if groups == 1:
        return w.t()
    og = c_out // groups
    blocks = w.reshape(groups, og, kg).transpose(1, 2)  # (G, Kg, Og)
    return torch.block_diag(*blocks.unbind(0))


def _diag_blocks(w: torch.Tensor, groups: int, kernel: tuple[int, int]) -> torch.Tensor:
    """Effective matrices ``(T, C_in·k, C_out)`` → conv kernels ``(T, C_out, C_in/groups, kh, kw)``."""
    t, k, c_out = w.shape
    kg, og = k // groups, c_out // groups
    if groups == 1:
        blocks = w.transpose(1, 2)  # (T, out, K)
    else:
        blocks = torch.diagonal(w.view(t, groups, kg, groups, og), dim1=1, dim2=3)  # (T, Kg, Og, G)
        blocks = blocks.permute(0, 3, 2, 1).reshape(t, c_out, kg)
    return blocks.reshape(t, c_out, kg // (kernel[0] * kernel[1]), *kernel)


def _pads(padding, kernel, dilation) -> tuple[int, int, int, int]:
    """``F.pad`` amounts ``(left_w, right_w, top_h, bottom_h)`` for a 2-D convolution."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        out = []
        for k, d in zip(reversed(kernel), reversed(dilation)):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    ph, pw = padding
    return (pw, pw, ph, ph)


class _CrossbarConvNd(CrossbarMatrix):
    """Shared implementation (2-D internally; ``Conv1d`` has height 1)."""

    _dims = 2

    def __init__(self, array: CrossbarMatrix, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding,
                 dilation, groups: int, padding_mode: str) -> None:
        super().__init__(array.crossbar, array.scale, array.n_params, array.bits, array.granularity, array.groups)
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.padding_mode = int(groups), padding_mode
        self.in_channels = weight.shape[1] * self.groups
        self.out_channels = weight.shape[0]
        self.kernel_size = tuple(weight.shape[2:])

    @classmethod
    def from_conv(cls, conv: nn.Module, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0,
                  bits: int | None = None):
        expected = nn.Conv1d if cls._dims == 1 else nn.Conv2d
        if not isinstance(conv, expected):
            raise TypeError(f"{cls.__name__}.from_conv: expected an {expected.__name__}, got {type(conv).__name__}")
        w = conv.weight.detach()
        array = CrossbarMatrix.from_matrix(conv_matrix(w, conv.groups), config or CrossbarConfig(), trials=trials,
                                           seed=seed, bits=bits)
        return cls(array, w, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode)

    def matrix(self) -> torch.Tensor:
        return conv_matrix(self.weight, self.groups)

    @torch.no_grad()
    def program(self, w: torch.Tensor | None = None, seed: int | None = None, config: CrossbarConfig | None = None,
                trials: int | None = None) -> None:
        """Program kernel ``w`` (default: the trained ``weight``) onto new device instances."""
        if w is not None:
            self.weight.copy_(w)
        super().program(self.matrix(), config=config, trials=trials, seed=self.crossbar.seed if seed is None else seed)

    # -- 2-D geometry (Conv1d maps onto height 1)
    def _geometry(self):
        if self._dims == 1:
            pad = self.padding if isinstance(self.padding, str) else (0, self.padding[0])
            return ((1, self.kernel_size[0]), (1, self.stride[0]), pad, (1, self.dilation[0]))
        return self.kernel_size, self.stride, self.padding, self.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nd = self._dims
        if x.dim() == nd + 2:
            x = x.unsqueeze(0)
        if x.dim() != nd + 3 or x.shape[2] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected (batch, {self.in_channels}, ...) or (trials, batch, "
                             f"{self.in_channels}, ...) with {nd} spatial dimension(s), got {tuple(x.shape)}")
        t, b = x.shape[:2]
        if nd == 1:
            x = x.unsqueeze(3)  # (T|1, B, C, 1, L)
        kernel, stride, padding, dilation = self._geometry()
        pads = _pads(padding, kernel, dilation)
        p = self.programmed(self.matrix() if self.training else None)
        conv_pad = (0, 0)
        if p.linear and self.padding_mode == "zeros" and pads[0] == pads[1] and pads[2] == pads[3]:
            conv_pad, pads = (pads[2], pads[0]), (0, 0, 0, 0)  # zero padding inside the convolution
        if any(pads):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x.reshape(t * b, *x.shape[2:]), pads, mode=mode)
            x = x.view(t, b, *x.shape[1:])
        if p.linear:
            y = self._conv_fast(x, p.weights(), kernel, stride, dilation, conv_pad)
        else:
            y = self._conv_unfold(x.reshape(t * b, *x.shape[2:]), t, b, p, kernel, stride, dilation)
        if self.bias is not None:
            y = y + self.bias.view(-1, 1, 1)
        return y.squeeze(3) if nd == 1 else y

    # -- the analog-training layer protocol (methods.analog): what the array's matmul sees
    def matmul_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The unrolled patches the array multiplies for input ``x`` (the forward's input): ``(T|1, B·L, C_in·k)``,
        rows in the order of :func:`conv_matrix`, patches ordered (sample, output position)."""
        nd = self._dims
        if x.dim() == nd + 2:
            x = x.unsqueeze(0)
        t, b = x.shape[:2]
        if nd == 1:
            x = x.unsqueeze(3)
        kernel, stride, padding, dilation = self._geometry()
        xf = x.reshape(t * b, *x.shape[2:])
        pads = _pads(padding, kernel, dilation)
        if any(pads):
            xf = F.pad(xf, pads, mode="constant" if self.padding_mode == "zeros" else self.padding_mode)
        cols = F.unfold(xf, kernel, dilation=dilation, stride=stride)  # (t·b, K, L)
        return cols.transpose(1, 2).reshape(t, -1, cols.shape[1])

    def matmul_grads(self, grad_out: torch.Tensor) -> torch.Tensor:
        """The gradient of the forward's output ``(T, B, C_out, *spatial_out)`` as the array's matmul output
        gradient ``(T, B·L, C_out)`` (same patch order as :meth:`matmul_inputs`)."""
        g = grad_out.unsqueeze(3) if self._dims == 1 else grad_out
        if g.dim() == 4:
            g = g.unsqueeze(0)
        return g.permute(0, 1, 3, 4, 2).reshape(g.shape[0], -1, g.shape[2])

    def _conv_fast(self, x, w_eff, kernel, stride, dilation, padding):
        """All trials as one grouped conv2d with the arrays' effective kernels, in channels-last memory
        (the trials' channels side by side: mkldnn's fast layout for grouped convolutions; the output
        view ``(T, B, C_out, H', W')`` feeds the next layer without a copy)."""
        t, b = x.shape[:2]
        trials, g, c_out = w_eff.shape[0], self.groups, self.out_channels
        k = _diag_blocks(w_eff, g, kernel)  # (T, out, Cg, kh, kw)
        cl = torch.channels_last
        if t == 1:  # shared input: output channels group-major (G, T, Og)
            og = c_out // g
            k = k.view(trials, g, og, *k.shape[2:]).transpose(0, 1).reshape(g * trials * og, *k.shape[2:])
            y = F.conv2d(x[0].contiguous(memory_format=cl), k, None, stride, padding, dilation, g)
            if g == 1:
                return y.view(b, trials, c_out, *y.shape[2:]).transpose(0, 1)
            y = y.view(b, g, trials, og, *y.shape[2:]).permute(2, 0, 1, 3, 4, 5)
            return y.reshape(trials, b, c_out, *y.shape[4:])
        xin = x.transpose(0, 1).reshape(b, t * x.shape[2], *x.shape[3:]).contiguous(memory_format=cl)
        y = F.conv2d(xin, k.reshape(trials * c_out, *k.shape[2:]), None, stride, padding, dilation, trials * g)
        return y.view(b, trials, c_out, *y.shape[2:]).transpose(0, 1)

    def _conv_unfold(self, xf, t, b, p, kernel, stride, dilation):
        """im2col: patches ``(T|1, B·L, C_in·k)`` through the crossbar, ``(T, B, C_out, H', W')``."""
        h, w = xf.shape[-2:]
        oh = (h - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
        ow = (w - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
        cols = F.unfold(xf, kernel, dilation=dilation, stride=stride)  # (t·b, K, L)
        cols = cols.transpose(1, 2).reshape(t, b * oh * ow, cols.shape[1])
        y = p(cols)  # (T, b·L, out)
        return y.view(y.shape[0], b, oh, ow, y.shape[-1]).permute(0, 1, 4, 2, 3)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"padding_mode={self.padding_mode}, bias={self.bias is not None}")


class CrossbarConv2d(_CrossbarConvNd):
    """``nn.Conv2d`` on a crossbar: ``(B, C, H, W)`` or ``(T, B, C, H, W)`` → ``(T, B, C_out, H', W')``."""

    _dims = 2


class CrossbarConv1d(_CrossbarConvNd):
    """``nn.Conv1d`` on a crossbar: ``(B, C, L)`` or ``(T, B, C, L)`` → ``(T, B, C_out, L')``."""

    _dims = 1


@register_converter(nn.Conv2d)
def _convert_conv2d(module, config, trials, seed):
    return CrossbarConv2d.from_conv(module, config, trials=trials, seed=seed)


@register_converter(nn.Conv1d)
def _convert_conv1d(module, config, trials, seed):
    return CrossbarConv1d.from_conv(module, config, trials=trials, seed=seed)
