"""``memristive cost MODEL_OR_CONFIG``: per-layer area, energy and latency table of a model on crossbars.

``MODEL_OR_CONFIG`` is a built-in model (``mnist-mlp``, ``vgg8``), a saved model (``.pt``/``.pth``,
converted or not; give ``--set input_shape=[...]``), or a cost spec file (YAML/TOML/JSON with the
fields of :class:`CostSpec`). The model runs once on ``n_inputs`` inputs (MNIST test images for
784-input models when the data is available, else uniform random in [0, 1)) and every crossbar's
cost is computed from the inputs it receives (:func:`memristive.hardware.inference_cost`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ConfigError, apply_overrides, check, from_dict, load_config, to_dict
from .crossbar import Converter, CrossbarConfig, Tiling
from .hardware import (Architecture, Technology, inference_cost, inference_table, programming_cost, technology,
                       technology_dict)

BUILTIN = ("mnist-mlp", "vgg8")


@dataclass
class CostSpec:
    """What to cost: a model, how it is converted, the technology, the architecture and the inputs."""

    model: str = "mnist-mlp"  # mnist-mlp | vgg8 | path to a saved model (.pt/.pth)
    sizes: list[int] = field(default_factory=lambda: [784, 100, 10])  # mnist-mlp layer sizes
    crossbar: CrossbarConfig = field(default_factory=lambda: CrossbarConfig(
        adc=Converter(bits=8), dac=Converter(bits=8), tile=Tiling(128, 128)))
    tech: Technology | str = field(default_factory=lambda: technology("neurosim-22nm"))  # preset name or fields
    arch: Architecture = field(default_factory=Architecture)
    inputs: str = "auto"  # auto (MNIST for 784 inputs if available, else random) | random | mnist
    n_inputs: int = 64
    input_shape: list[int] | None = None  # one input's shape (required for a saved model)
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.model in BUILTIN or Path(self.model).suffix in (".pt", ".pth"), "model", self.model,
              f"must be one of {list(BUILTIN)} or a saved model file (.pt/.pth)")
        check(self.inputs in ("auto", "random", "mnist"), "inputs", self.inputs, "must be auto, random or mnist")
        check(self.n_inputs >= 1, "n_inputs", self.n_inputs, "must be >= 1")
        self.tech = technology(self.tech)


def _base_spec(model: str) -> CostSpec:
    if model == "vgg8":
        from .experiments.cost_accuracy import NeuroSimVGG8Config

        ref = NeuroSimVGG8Config()
        return CostSpec(model="vgg8", crossbar=ref.crossbar, tech=ref.tech, arch=ref.arch, n_inputs=2,
                        input_shape=[3, 32, 32])
    return CostSpec(model=model)


def build_spec(model_or_config: str, overrides: list[str] | None = None, tech: str | None = None) -> CostSpec:
    """The resolved :class:`CostSpec` (file, built-in name or saved model; then ``--set``/``--tech``)."""
    path = Path(model_or_config)
    if path.suffix in (".yaml", ".yml", ".json", ".toml"):
        data = load_config(path)
        if not isinstance(data.get("model", "mnist-mlp"), str):
            raise ConfigError(f"model={data.get('model')!r}: expected a built-in name or a file path")
    elif model_or_config in BUILTIN or path.suffix in (".pt", ".pth"):
        data = {"model": model_or_config}
    else:
        raise ConfigError(f"{model_or_config!r}: not a built-in model ({', '.join(BUILTIN)}), a saved model "
                          "(.pt/.pth) or a cost spec (.yaml/.yml/.json/.toml)")
    if path.suffix in (".pt", ".pth") and not path.is_file():
        raise ConfigError(f"model file {str(path)!r} does not exist")
    if tech is not None:  # before --set, so that --set tech.FIELD=... refines the chosen technology
        data["tech"] = load_config(tech) if Path(tech).suffix in (".yaml", ".yml", ".json", ".toml") else \
            technology_dict(technology(tech))
    data = apply_overrides(data, list(overrides or []))
    base = _base_spec(data.get("model", "mnist-mlp"))
    return from_dict(CostSpec, data, base=base)


def build_model(spec: CostSpec) -> tuple[torch.nn.Module, torch.Tensor]:
    """The converted model and the inputs to cost it on."""
    from .nn import convert, mlp

    torch.manual_seed(spec.seed)
    if spec.model == "mnist-mlp":
        model, shape = mlp(spec.sizes), [spec.sizes[0]]
    elif spec.model == "vgg8":
        from .experiments.cost_accuracy import vgg8

        model, shape = vgg8(), [3, 32, 32]
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    else:
        model = torch.load(spec.model, weights_only=False)
        if spec.input_shape is None:
            raise ConfigError(f"input_shape=None: give the shape of one input for {spec.model!r}, e.g. --set input_shape=[784]")
        shape = spec.input_shape
    from .hardware import crossbar_layers

    if not crossbar_layers(model):
        model = convert(model, spec.crossbar, trials=1, seed=spec.seed)
    model.eval()
    shape = spec.input_shape or shape
    x = None
    if spec.inputs in ("auto", "mnist") and list(shape) == [784]:
        try:
            from .data import load_dataset

            x = load_dataset("mnist").x_test[: spec.n_inputs]
        except Exception as exc:  # no data: random inputs unless MNIST was asked for explicitly
            if spec.inputs == "mnist":
                raise ConfigError(f"inputs='mnist': MNIST is not available ({exc})") from None
    elif spec.inputs == "mnist":
        raise ConfigError(f"inputs='mnist': the model takes inputs of shape {list(shape)}, MNIST images are [784]")
    if x is None:
        x = torch.rand(spec.n_inputs, *shape, generator=torch.Generator().manual_seed(spec.seed))
    return model, x


def run_cost(model_or_config: str, overrides: list[str] | None = None, tech: str | None = None,
             program: bool = False) -> dict:
    spec = build_spec(model_or_config, overrides, tech)
    model, x = build_model(spec)
    cost = inference_cost(model, x, spec.tech, spec.arch)
    cost["spec"] = to_dict(spec)
    if program:
        cost["programming"] = programming_cost(model, spec.tech)
    return cost


def print_cost(cost: dict, echo=print) -> None:
    """Print the per-layer table and totals (a rich table when rich is installed)."""
    rows = inference_table(cost)
    title = (f"{cost['spec']['model']} on {cost['tech']} ({cost['arch']['input_mode']} inputs, "
             f"{cost['arch']['cols_per_adc']} columns/ADC; per inference, mean of {cost['inferences']})")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        echo(title)
        for r in rows:
            echo(" | ".join(r))
    else:
        table = Table(title=title)
        for h in rows[0]:
            table.add_column(h, justify="left" if h == "layer" else "right")
        for r in rows[1:-1]:
            table.add_row(*r)
        table.add_row(*rows[-1], style="bold")
        console = Console()
        if not console.is_terminal:  # a pipe or file: do not squeeze the table into 80 columns
            console = Console(width=180)
        console.print(table)
    t = cost["total"]
    echo(f"energy/inference {t['energy_j']['total']:.4g} J, latency {t['latency_s']:.4g} s, area {t['area_mm2']:.4g} mm², "
         f"{t['tiles']} tiles, {t['adcs']} ADCs")
    if "programming" in cost:
        p = cost["programming"]["total"]
        echo(f"one-shot programming: {p['pulses']:.4g} pulses, {p['energy_j']:.4g} J, {p['time_s']:.4g} s")
    if cost.get("assumed_bits"):
        echo(f"note: {' and '.join(cost['assumed_bits'])} converter bits are not set (ideal in the simulation); "
             "their cost assumes 8 bits (set crossbar.dac.bits / crossbar.adc.bits or arch.input_bits / arch.adc_bits)")
    if cost.get("unread_layers"):
        echo(f"warning: {cost['unread_layers']} were not read through Crossbar.matmul (fast path); their "
             "input-dependent energies are 0")


def cost_command(model_or_config: str, set_: list[str], tech: str | None, out: Path | None, program: bool,
                 show_config: bool, fail) -> None:
    """Body of the ``memristive cost`` command (``fail(msg)`` reports an error and exits)."""
    try:
        if show_config:
            print(json.dumps(to_dict(build_spec(model_or_config, set_, tech)), indent=2))
            return
        cost = run_cost(model_or_config, set_, tech, program)
    except ConfigError as exc:
        fail(str(exc))
        return
    print_cost(cost)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(cost, indent=2, default=str))
        print(f"written: {out}")


__all__ = ["CostSpec", "build_spec", "build_model", "run_cost", "print_cost", "cost_command"]
