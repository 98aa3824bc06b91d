"""Recurrent layers on crossbars: ``CrossbarRNN`` and ``CrossbarLSTM`` (``CrossbarGRU`` is in :mod:`.gru`).

Layout (as the GRU's ``fused`` layout, after Li et al. 2019's one-array LSTM): one array per layer
with ``[x; h; 1]`` on the rows and the gates on the columns::

    RNN:   [W_ihᵀ; W_hhᵀ; b_ih + b_hh]        (in + h + 1) × h
    LSTM:  [W_ihᵀ; W_hhᵀ; b_ih + b_hh]        (in + h + 1) × 4h     gates i, f, g, o (PyTorch order)

    RNN:   h' = act(x·W_ihᵀ + h·W_hhᵀ + b)                           act = tanh or relu
    LSTM:  i, f, o = σ(·), g = tanh(·);  c' = f ⊙ c + i ⊙ g;  h' = o ⊙ tanh(c')

The gate nonlinearities and the state update are digital (periphery). Parameters keep PyTorch's
names (``weight_ih_l0`` …), so a torch state dict loads into the trainable weights. Inputs follow the
torch module's ``batch_first``: ``(L, B, in)`` / ``(B, L, in)``, or with a leading trial dimension
``(T, …)``; outputs ``(T, L, B, h)`` / ``(T, B, L, h)`` and ``h_n`` (and ``c_n``) ``(T, layers, B, h)``.
Unidirectional, without projections (``proj_size = 0``); others raise.

When the array is a plain linear map the effective weights are read once per forward and the input
projection of all steps is one batched matmul; otherwise every step is a :meth:`Crossbar.matmul`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..crossbar import CrossbarConfig
from .base import CrossbarMatrix, layer_seed, register_converter

__all__ = ["CrossbarRNN", "CrossbarLSTM", "recurrent_matrix"]


def recurrent_matrix(module: nn.Module, layer: int) -> torch.Tensor:
    """``[W_ihᵀ; W_hhᵀ; b_ih + b_hh]`` of one layer (differentiable)."""
    w_ih, w_hh = getattr(module, f"weight_ih_l{layer}"), getattr(module, f"weight_hh_l{layer}")
    rows = [w_ih.t(), w_hh.t()]
    if module.bias:
        rows.append((getattr(module, f"bias_ih_l{layer}") + getattr(module, f"bias_hh_l{layer}")).unsqueeze(0))
    return torch.cat(rows, 0)


class _CrossbarRecurrent(nn.Module):
    _gates = 1
    _torch_type: type = nn.RNNBase

    def __init__(self, source: nn.Module, arrays: list[CrossbarMatrix]) -> None:
        super().__init__()
        if source.bidirectional or getattr(source, "proj_size", 0):
            raise ValueError(f"{type(self).__name__}: bidirectional layers and projections are not supported")
        self.input_size, self.hidden_size = source.input_size, source.hidden_size
        self.num_layers, self.bias, self.batch_first = source.num_layers, source.bias, source.batch_first
        self.dropout = float(source.dropout)
        self.nonlinearity = getattr(source, "nonlinearity", "tanh")
        for name, p in source.named_parameters():
            self.register_parameter(name, nn.Parameter(p.detach().clone()))
        self.arrays = nn.ModuleList(arrays)

    @classmethod
    def from_module(cls, module: nn.Module, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0,
                    bits: int | None = None):
        if not isinstance(module, cls._torch_type):
            raise TypeError(f"{cls.__name__}: expected an {cls._torch_type.__name__}, got {type(module).__name__}")
        if module.bidirectional or getattr(module, "proj_size", 0):
            raise ValueError(f"{cls.__name__}: bidirectional layers and projections are not supported")
        config = config or CrossbarConfig()
        arrays = [CrossbarMatrix.from_matrix(recurrent_matrix(module, k).detach(), config, trials=trials,
                                             seed=layer_seed(seed, k), bits=bits) for k in range(module.num_layers)]
        return cls(module, arrays)

    @property
    def trials(self) -> int:
        return self.arrays[0].trials

    @torch.no_grad()
    def program(self, seed: int = 0, config: CrossbarConfig | None = None, trials: int | None = None) -> None:
        """Program the trained parameters onto new device instances (array ``k`` gets ``layer_seed(seed, k)``)."""
        for k, arr in enumerate(self.arrays):
            arr.program(recurrent_matrix(self, k), config=config, trials=trials, seed=layer_seed(seed, k))

    def _cell(self, pre: torch.Tensor, state):
        raise NotImplementedError

    def _init_state(self, hx, k, trials, batch, like):
        raise NotImplementedError

    def _finals(self, finals):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, hx=None):
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected ({'batch, steps' if self.batch_first else 'steps, batch'}, "
                             f"{self.input_size}) with an optional leading trial dimension, got {tuple(x.shape)}")
        seq = x if self.batch_first else x.transpose(1, 2)  # (T|1, B, L, in)
        batch, steps = seq.shape[1], seq.shape[2]
        finals = []
        for k, arr in enumerate(self.arrays):
            p = arr.programmed(recurrent_matrix(self, k) if self.training else None)
            trials = p.trials
            state = self._init_state(hx, k, trials, batch, seq)
            n_in = seq.shape[-1]
            h = self.hidden_size
            if p.linear:
                w = p.weights()  # (T, in + h [+1], G·h)
                w_x, w_h = w[:, :n_in], w[:, n_in:n_in + h]
                xt = seq.transpose(1, 2).expand(trials, steps, batch, n_in).reshape(trials, steps * batch, n_in)
                xp = torch.baddbmm(w[:, n_in + h].unsqueeze(1), xt, w_x) if self.bias else torch.bmm(xt, w_x)
                xs = xp.view(trials, steps, batch, -1).unbind(1)

                def pre(t, hh, xs=xs, w_h=w_h):
                    return torch.baddbmm(xs[t], hh, w_h)
            else:
                xs = seq.expand(trials, *seq.shape[1:]).unbind(2)
                ones = seq.new_ones(trials, batch, 1)

                def pre(t, hh, xs=xs, p=p, ones=ones):
                    parts = [xs[t], hh] + ([ones] if self.bias else [])
                    return p(torch.cat(parts, -1))
            outs = []
            for t in range(steps):
                state = self._cell(pre(t, state[0]), state)
                outs.append(state[0])
            seq = torch.stack(outs, 2)
            finals.append(state)
            if self.training and self.dropout > 0 and k < self.num_layers - 1:
                seq = F.dropout(seq, self.dropout, True)
        out = seq if self.batch_first else seq.transpose(1, 2)
        return out, self._finals(finals)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}")


def _state_for_layer(hx, k, trials, batch, hidden, like):
    if hx is None:
        return like.new_zeros(trials, batch, hidden)
    h = hx[:, k] if hx.dim() == 4 else hx[k].unsqueeze(0)
    return h.expand(trials, batch, hidden)


class CrossbarRNN(_CrossbarRecurrent):
    """``nn.RNN`` (tanh or relu) on crossbars; ``forward(x, h0=None) → (out, h_n)``."""

    _torch_type = nn.RNN

    def _init_state(self, hx, k, trials, batch, like):
        return (_state_for_layer(hx, k, trials, batch, self.hidden_size, like),)

    def _cell(self, pre, state):
        return (torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre),)

    def _finals(self, finals):
        return torch.stack([s[0] for s in finals], 1)


class CrossbarLSTM(_CrossbarRecurrent):
    """``nn.LSTM`` on crossbars; ``forward(x, (h0, c0)=None) → (out, (h_n, c_n))``."""

    _torch_type = nn.LSTM

    def _init_state(self, hx, k, trials, batch, like):
        h0, c0 = (None, None) if hx is None else hx
        return (_state_for_layer(h0, k, trials, batch, self.hidden_size, like),
                _state_for_layer(c0, k, trials, batch, self.hidden_size, like))

    def _cell(self, pre, state):
        i, f, g, o = pre.chunk(4, -1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def _finals(self, finals):
        return torch.stack([s[0] for s in finals], 1), torch.stack([s[1] for s in finals], 1)


@register_converter(nn.RNN)
def _convert_rnn(module, config, trials, seed):
    return CrossbarRNN.from_module(module, config, trials=trials, seed=seed)


@register_converter(nn.LSTM)
def _convert_lstm(module, config, trials, seed):
    return CrossbarLSTM.from_module(module, config, trials=trials, seed=seed)
