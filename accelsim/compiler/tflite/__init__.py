"""The TFLite importer: full-integer TFLite flatbuffers into the QGraph, with each LiteRT kernel
set's (or tflite-micro's) rounding (engines.py)."""

from .engines import DEFAULT_ENGINE, ENGINES
from .importer import import_tflite
from .load import load_tflite, parse_tflite
from .model import TFLiteCompiler, run_stream

__all__ = ["DEFAULT_ENGINE", "ENGINES", "TFLiteCompiler", "import_tflite", "load_tflite", "parse_tflite", "run_stream"]
