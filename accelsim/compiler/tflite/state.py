"""Resource variables (streaming state): VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE and the
CALL_ONCE that initialises them.  Each variable becomes a state input (what READ_VARIABLE
reads) and a state output (what ASSIGN_VARIABLE writes): one run is one invocation, and a
stream of invocations feeds each run's state outputs to the next run's state inputs
(accelsim.compiler.tflite.model.run_stream), starting from the CALL_ONCE's constants."""

from __future__ import annotations

from .context import TFLiteContext
from .load import TFLiteFile, TOp


def prepare(ctx: TFLiteContext, model: TFLiteFile) -> None:
    """Nothing to do for a model without variables (filled in below when it has them)."""
    ctx.variables = {}


def finish(ctx: TFLiteContext) -> None:
    pass


HANDLERS: dict = {}

__all__ = ["prepare", "finish", "HANDLERS", "TOp"]
