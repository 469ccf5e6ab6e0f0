"""Quantization for the chip: calibration and post-training quantization of float ONNX models to
standard QDQ models (QAT joins it later).  Depends on accelsim.compiler for its errors."""

from .calibrate import CALIBRATORS, TensorStats, calibrated_range
from .config import QuantConfig, container, load_layer_bits
from .graph import fold_batchnorm, name_nodes
from .ptq import collect_stats, float_runner, quantize_model

__all__ = ["CALIBRATORS", "TensorStats", "calibrated_range", "QuantConfig", "container", "load_layer_bits",
           "fold_batchnorm", "name_nodes", "collect_stats", "float_runner", "quantize_model"]
