"""The bounded linear-conductance device and its presets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..config import ConfigError, check
from .base import Device, register_device, register_preset


@register_device("linear")
@dataclass
class LinearDevice(Device):
    """A device programmable to any conductance in ``[g_min, g_max]`` (siemens).

    Give either resistances (``r_on`` = low-resistance state, ``r_off`` = high-resistance state, in
    ohms) or conductances (``g_min``, ``g_max``). ``levels`` (>= 2) restricts programming to that many
    evenly spaced conductances; ``None`` means analog (continuous).
    """

    r_on: float | None = None
    r_off: float | None = None
    g_min: float | None = None
    g_max: float | None = None
    levels: int | None = None
    name: str = "linear"
    kind: Literal["linear"] = "linear"

    __config_merge__ = False  # a config mapping replaces the whole device (r_* or g_*, not a mix)

    def __post_init__(self) -> None:
        has_r = self.r_on is not None or self.r_off is not None
        has_g = self.g_min is not None or self.g_max is not None
        if has_r and has_g:
            # both given (e.g. a resolved config read back): they must agree
            ok = all(v is not None for v in (self.r_on, self.r_off, self.g_min, self.g_max)) and (
                math.isclose(1.0 / self.r_on, self.g_max, rel_tol=1e-9)
                and (math.isclose(1.0 / self.r_off, self.g_min, rel_tol=1e-9) if self.g_min > 0 else math.isinf(self.r_off))
            )
            if not ok:
                raise ConfigError(
                    f"memristor: r_on/r_off=({self.r_on}, {self.r_off}) and g_min/g_max=({self.g_min}, {self.g_max}) "
                    "disagree; give one pair only"
                )
            has_g = False
        if has_r:
            check(self.r_on is not None and self.r_off is not None, "memristor.r_on/r_off",
                  (self.r_on, self.r_off), "both r_on and r_off are needed")
            for key in ("r_on", "r_off"):
                val = getattr(self, key)
                check(math.isfinite(val) and val > 0, f"memristor.{key}", val, "must be a positive finite resistance in ohms")
            check(self.r_on < self.r_off, "memristor.r_on", self.r_on,
                  f"must be below r_off={self.r_off} (r_on is the low-resistance state)")
            self.g_min, self.g_max = 1.0 / self.r_off, 1.0 / self.r_on
        elif has_g:
            check(self.g_min is not None and self.g_max is not None, "memristor.g_min/g_max",
                  (self.g_min, self.g_max), "both g_min and g_max are needed")
            for key in ("g_min", "g_max"):
                val = getattr(self, key)
                check(math.isfinite(val) and val >= 0, f"memristor.{key}", val, "must be a finite conductance >= 0 in siemens")
            check(self.g_min < self.g_max, "memristor.g_min", self.g_min, f"must be below g_max={self.g_max}")
            self.r_on = 1.0 / self.g_max
            self.r_off = math.inf if self.g_min == 0 else 1.0 / self.g_min
        else:
            raise ConfigError("memristor: give r_on/r_off (ohms) or g_min/g_max (siemens)")
        if self.levels is not None:
            check(isinstance(self.levels, int) and not isinstance(self.levels, bool) and self.levels >= 2, "memristor.levels", self.levels,
                  "must be an integer >= 2 (or null for an analog device)")

    @property
    def on_off_ratio(self) -> float:
        return self.g_max / self.g_min if self.g_min > 0 else math.inf


# Sun et al., IEEE EDL 39(9):1298 (2018): Ti/AlOx/TaOx/Pt analog synapse, programmable between
# 1 kOhm and 12 kOhm; the device of the calibration paper (Du, Peng, Liu, J. NUDT 2023).
register_preset("ti-alox-taox", "linear", r_on=1e3, r_off=12e3, name="Ti/AlOx/TaOx/Pt (Sun 2018), 1-12 kOhm")
# Li et al., Nat. Mach. Intell. 2019 (1T1R Ta/HfO2): conductances used for weights ~ 0-200 uS
register_preset("hfo2-1t1r", "linear", g_min=2e-6, g_max=200e-6, name="Ta/HfO2 1T1R (Li 2019), 2-200 uS")

