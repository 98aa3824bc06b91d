"""Whole-model conversion: any ``nn.Module`` onto crossbars, with a report.

``convert(model, config, trials=T, seed=s, layer_configs={...})`` walks the module tree. Every module
whose type has a registered converter (:func:`memristive.nn.register_converter`; built in:
``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``, ``nn.RNN``, ``nn.LSTM``, ``nn.GRU``, ``GRUNet``) becomes
its crossbar layer; ``layer_configs`` chooses per layer, by qualified name (``"features.0"``) or by
type (``nn.Conv2d`` or ``"Conv2d"``), another :class:`CrossbarConfig` or ``None`` = stay digital
(names win over types). Every other leaf module is wrapped in :class:`TrialFold`; containers keep
their own ``forward``.

The trial convention (what a converted model computes):

* the converted model takes the usual inputs ``(B, …)``, shared by all ``T`` device instances, and
  returns ``(T, B, …)`` (a forward pre-hook on the returned model adds a leading trial dimension of
  size 1 to its tensor inputs; a forward hook expands a size-1 trial dimension of the output to ``T``);
* inside, every tensor carries the leading trial dimension: crossbar layers take ``(1|T, B, …)`` and
  return ``(T, B, …)``; other modules run with trials folded into the batch (``(T·B, …)``), so any
  per-sample layer works (BatchNorm in eval mode, LayerNorm, pooling, dropout, flatten, activations,
  embeddings); residual additions broadcast;
* custom ``forward`` code between layers must keep the leading dimension: ``x.flatten(2)`` rather
  than ``x.flatten(1)``/``x.view(x.size(0), -1)`` (use ``nn.Flatten``, which is folded).

Seeds: the ``i``-th array of the model (walk order) is programmed with ``layer_seed(seed, i)`` =
``seed + 1000·i`` (:func:`memristive.nn.base.layer_seed`), so layers' defects are independent.

The report (``convert(..., report=True)`` returns ``(model, report)``; ``print(report)``) lists every
converted layer (rows, cols, tiles, cells of its arrays) and every module with parameters that stayed
digital and why — nothing is skipped silently.

Training: the converted model keeps trainable parameters (weights in weight units);
``model.train()`` switches every crossbar layer to hardware-aware training (see
:mod:`memristive.nn.base`), :func:`program` writes the trained weights onto fresh device instances.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from ..crossbar import CrossbarConfig
from .base import CrossbarMatrix, TrialFold, find_converter, layer_seed
from .linear import Abs

__all__ = ["convert", "ConversionReport", "program", "crossbar_layers", "arrays", "ELEMENTWISE"]

# modules that act elementwise (or are identities): they need no trial fold
ELEMENTWISE: tuple[type, ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
    nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Identity,
    nn.Dropout, nn.AlphaDropout, Abs,
)


@dataclass
class ConversionReport:
    """Which layers became crossbars and which stayed digital (rows of dicts)."""

    crossbar: list[dict] = field(default_factory=list)
    digital: list[dict] = field(default_factory=list)

    @property
    def cells(self) -> int:
        return sum(r["cells"] for r in self.crossbar)

    @property
    def tiles(self) -> int:
        return sum(r["tiles"] for r in self.crossbar)

    def to_dict(self) -> dict:
        return {"crossbar": self.crossbar, "digital": self.digital, "cells": self.cells, "tiles": self.tiles}

    def __str__(self) -> str:
        lines = [f"{'layer':<28} {'type':<16} {'arrays':>6} {'rows':>7} {'cols':>7} {'tiles':>6} {'cells':>10}"]
        for r in self.crossbar:
            lines.append(f"{r['name'] or '(model)':<28} {r['type']:<16} {r['arrays']:>6} {r['rows']:>7} {r['cols']:>7} "
                         f"{r['tiles']:>6} {r['cells']:>10}")
        lines.append(f"{'total':<28} {'':<16} {'':>6} {'':>7} {'':>7} {self.tiles:>6} {self.cells:>10}")
        if self.digital:
            lines.append("digital (not on crossbars):")
            for r in self.digital:
                lines.append(f"  {r['name'] or '(model)':<26} {r['type']:<16} {r['params']:>9} params  {r['reason']}")
        return "\n".join(lines)


def _config_for(name: str, module: nn.Module, default: CrossbarConfig, layer_configs: dict):
    """(config or None, source) for one layer: by name, then by type (most specific class)."""
    if name in layer_configs:
        return layer_configs[name], f"layer_configs[{name!r}]"
    for cls in type(module).__mro__:
        for key in (cls, cls.__name__):
            if key in layer_configs:
                return layer_configs[key], f"layer_configs[{cls.__name__}]"
    return default, "config"


def arrays(module: nn.Module) -> list[CrossbarMatrix]:
    """The :class:`CrossbarMatrix` arrays of a module, in registration order."""
    return [m for m in module.modules() if isinstance(m, CrossbarMatrix)]


def crossbar_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every converted layer: the outermost modules with arrays and a
    ``program`` method (a :class:`CrossbarGRUNet` counts once, not its inner GRU)."""
    out: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if type(m) is CrossbarMatrix or not callable(getattr(m, "program", None)) or not arrays(m):
            continue
        if any(name == n or name.startswith(n + ".") or not n for n, _ in out):
            continue
        out.append((name, m))
    return out


def _count(module: nn.Module) -> dict:
    arrs = arrays(module)
    counts = [a.crossbar.counts() for a in arrs]
    return {"arrays": len(arrs), "rows": sum(c["rows"] for c in counts), "cols": sum(c["cols"] for c in counts),
            "tiles": sum(c["tiles"] for c in counts), "cells": sum(c["cells"] for c in counts)}


def _add_trial_dim(module, args, kwargs):
    """Forward pre-hook of a converted model: inputs ``(B, …)`` become ``(1, B, …)`` (shared by all trials)."""
    args = tuple(a.unsqueeze(0) if isinstance(a, torch.Tensor) else a for a in args)
    kwargs = {k: (v.unsqueeze(0) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    return args, kwargs


def _expand_trials(module, args, kwargs, output):
    """Forward hook of a converted model: a size-1 trial dimension of the output becomes ``T``."""
    t = getattr(module, "converted_trials", 1)
    if isinstance(output, torch.Tensor) and output.shape[0] == 1 and t > 1 and not module.training:
        return output.expand(t, *output.shape[1:])
    return None


def convert(model: nn.Module, config: CrossbarConfig | None = None, trials: int = 1, seed: int = 0,
            layer_configs: dict | None = None, inplace: bool = False, report: bool = False):
    """Put ``model`` onto crossbars (see the module docstring); returns the model in eval mode, or
    ``(model, ConversionReport)`` with ``report=True``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert: expected an nn.Module, got {type(model).__name__}")
    if not (isinstance(trials, int) and trials >= 1):
        raise ValueError(f"trials={trials!r}: must be an integer >= 1")
    config = config or CrossbarConfig()
    layer_configs = dict(layer_configs or {})
    for key, val in layer_configs.items():
        if not (isinstance(key, (str, type))):
            raise TypeError(f"layer_configs key {key!r}: must be a module name or type")
        if val is not None and not isinstance(val, CrossbarConfig):
            raise TypeError(f"layer_configs[{key!r}]={val!r}: must be a CrossbarConfig or None (stay digital)")
    names = {n for n, _ in model.named_modules()}
    unknown = [k for k in layer_configs if isinstance(k, str) and k not in names and "." in k]
    if unknown:
        raise ValueError(f"layer_configs: no module named {unknown}; known: {sorted(n for n in names if n)[:20]}")
    model = model if inplace else copy.deepcopy(model)
    rep = ConversionReport()
    counter = [0]

    def visit(name: str, module: nn.Module) -> nn.Module:
        fn = find_converter(module)
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if fn is not None:
            cfg, src = _config_for(name, module, config, layer_configs)
            if cfg is None:
                rep.digital.append(dict(name=name, type=type(module).__name__, params=_nparams(module),
                                        reason=f"kept digital by {src}"))
                return TrialFold(module)
            new = fn(module, cfg, trials, layer_seed(seed, counter[0]))
            c = _count(new)
            counter[0] += c["arrays"]
            rep.crossbar.append(dict(name=name, type=type(module).__name__, config=src, **c))
            return new
        children = list(module.named_children())
        if not children:
            if own:
                reason = ("lookup table / per-channel affine: digital periphery" if isinstance(
                    module, (nn.Embedding, nn.EmbeddingBag, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm))
                    else f"no converter for {type(module).__name__} (memristive.nn.register_converter adds one)")
                rep.digital.append(dict(name=name, type=type(module).__name__, params=own, reason=reason))
            return module if isinstance(module, ELEMENTWISE) else TrialFold(module)
        if own:
            rep.digital.append(dict(name=name, type=type(module).__name__, params=own,
                                    reason="parameters used by its own forward (not a registered layer)"))
        for cname, child in children:
            setattr(module, cname, visit(f"{name}.{cname}" if name else cname, child))
        return module

    out = visit("", model)
    if out is model or isinstance(out, TrialFold):  # a converted single layer takes (B, …) itself
        out.converted_trials = trials
        out.register_forward_pre_hook(_add_trial_dim, with_kwargs=True)
        out.register_forward_hook(_expand_trials, with_kwargs=True)
    out.eval()
    return (out, rep) if report else out


def _nparams(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def program(model: nn.Module, config: CrossbarConfig | None = None, trials: int | None = None, seed: int = 0,
            layer_configs: dict | None = None) -> nn.Module:
    """Program the (trained) weights of every crossbar layer onto fresh device instances, in place.

    ``config`` (default: each array's own), ``trials`` (default: each array's own) and the seed rule
    of :func:`convert` (array ``i`` gets ``layer_seed(seed, i)``); ``layer_configs`` by name/type as in
    :func:`convert` (a ``None`` entry keeps that layer's arrays as they are). Returns the model in eval mode.
    """
    layer_configs = dict(layer_configs or {})
    index = 0
    for name, layer in crossbar_layers(model):
        n = len(arrays(layer))
        cfg, src = _config_for(name, layer, config, layer_configs)
        if cfg is None and src != "config":  # layer_configs says: leave this layer's arrays alone
            index += n
            continue
        if not hasattr(layer, "program"):
            raise TypeError(f"{name}: {type(layer).__name__} has no program() to write trained weights")
        layer.program(seed=layer_seed(seed, index), config=cfg, trials=trials)
        index += n
    if trials is not None and hasattr(model, "converted_trials"):
        model.converted_trials = trials
    return model.eval()
