"""memristive: neural networks on memristor crossbar arrays, in pure Python on PyTorch."""

__version__ = "0.1.0"

from .config import ConfigError  # noqa: E402
from .crossbar import Crossbar, CrossbarConfig, Mapping  # noqa: E402
from .devices import LinearDevice  # noqa: E402

__all__ = ["Crossbar", "CrossbarConfig", "Mapping", "LinearDevice", "ConfigError", "__version__"]
