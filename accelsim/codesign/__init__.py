"""Co-design: per-layer bit widths searched against the chip's simulated cost and the accuracy
measured on the chip (tables -> ILP frontier -> bit-exact verification)."""

from .run import codesign
from .search import Choice, frontier, greedy, predicted, solve
from .tables import Evaluator, Metrics, Tables, build_tables, searchable_layers

__all__ = ["codesign", "Choice", "frontier", "greedy", "predicted", "solve", "Evaluator", "Metrics", "Tables",
           "build_tables", "searchable_layers"]
