"""The chip: its configuration, the program format, validation and lowering to integer rows, the
Numba value and timing loops, the ``Simulator`` and its run report.

Depends on isa/ and kernels/ only.
"""

import kernels  # noqa: F401  (installs the source-keyed Numba cache before the loops here compile)

from .config import ChipConfig, ConfigError, load_chip
from .errors import SimError
from .program import Program, ProgramError, TensorRef
from .report import RunReport
from .simulator import Simulator

__all__ = ["ChipConfig", "ConfigError", "load_chip", "SimError", "Program", "ProgramError", "TensorRef",
           "RunReport", "Simulator"]
