"""Device models: validated parameter objects. The physics lives in functions on tensors.

* :class:`LinearDevice` -- a bounded conductance device (``g_min``..``g_max``), optionally with a
  finite number of programmable levels. Presets: :data:`PRESETS`.
"""

from .linear import PRESETS, LinearDevice, preset, quantize_to_levels
from .vteam import VTEAM_PRESETS, Pulse, Variability, VTEAMCells, VTEAMDevice, vteam_preset

__all__ = ["LinearDevice", "PRESETS", "preset", "quantize_to_levels",
           "VTEAMDevice", "VTEAM_PRESETS", "vteam_preset", "Pulse", "Variability", "VTEAMCells"]
