"""``python -m memristive``: the same command line as ``memristive``."""

from .cli import main

main()
