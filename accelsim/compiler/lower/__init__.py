"""Lowering: one module per op family turns IR nodes into instructions, DRAM constants and layer
records through a shared ProgramBuilder.  Importing the package registers every lowering."""

from . import depthwise, eltwise, gemm, host, pools, tables  # noqa: F401  (register their lowerings)
from .builder import ProgramBuilder
from .registry import LOWERINGS, lowering_of, lowers

__all__ = ["ProgramBuilder", "LOWERINGS", "lowering_of", "lowers"]
