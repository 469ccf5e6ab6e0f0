"""The chip: its configuration, the program format, validation and lowering to integer rows, the
Numba value and timing loops, the ``Simulator`` and its run report.

Depends on isa/ and kernels/ only.
"""

from pathlib import Path

from kernels._cache import KERNELS_DIR, drop_stale_cache

# The loops here link the kernels: their Numba cache must go when any kernel source changes.
drop_stale_cache(Path(__file__).resolve().parent, KERNELS_DIR.glob("*.py"), tag="accelsim")

from .config import ChipConfig, ConfigError, load_chip  # noqa: E402
from .errors import SimError  # noqa: E402
from .program import Program, ProgramError, TensorRef  # noqa: E402
from .report import RunReport  # noqa: E402
from .simulator import Simulator  # noqa: E402

__all__ = ["ChipConfig", "ConfigError", "load_chip", "SimError", "Program", "ProgramError", "TensorRef",
           "RunReport", "Simulator"]
