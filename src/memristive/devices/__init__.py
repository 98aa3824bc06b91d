"""Device models (the physics layer): the :class:`Device` interface, its kinds and presets.

* :class:`LinearDevice` -- a bounded conductance device (``g_min``..``g_max``), optionally with a
  finite number of programmable levels.
* :class:`VTEAMDevice` -- the VTEAM threshold-switching model with a pulse response.

``device_from_spec("ti-alox-taox")`` builds any registered kind from a preset name or parameters.
"""

from .base import DEVICES, PRESETS, Device, device_from_spec, load_presets, preset, register_device, register_preset
from .linear import LinearDevice
from .iv import SinhDevice  # registers the "sinh" kind (nonlinear read I–V)
from .pulsed import PULSED_PRESETS, PulsedDevice  # noqa: F401  (registers the pulsed kinds and presets)
from .vteam import VTEAM_PRESETS, Pulse, Variability, VTEAMCells, VTEAMDevice, vteam_preset

__all__ = ["Device", "DEVICES", "PRESETS", "register_device", "register_preset", "preset", "device_from_spec", "load_presets",
           "LinearDevice", "SinhDevice", "VTEAMDevice", "VTEAM_PRESETS", "vteam_preset", "Pulse", "Variability", "VTEAMCells"]
