"""Quantization-aware training (PyTorch, the ``qat`` extra) that deploys bit-exact on the chip.

``prepare(model, config)`` -> the user's own training loop -> ``export(net, example_input, path)``;
``integer_forward`` / ``integer_accuracy`` run the deployed integers exactly as the chip does.
Importing this package needs torch (docs/qat.md)."""

from .config import METHODS, QatConfig, QatError
from .deploy import Deployment, deployment, export, to_qdq
from .fake import (LsqPlusQuantizer, LsqQuantizer, MinMaxObserver, PactQuantizer, dorefa_codes, dorefa_weight,
                   quantize_codes)
from .integer import integer_accuracy, integer_forward, run_codes
from .prepare import prepare
from .steps import QatNet

__all__ = ["prepare", "export", "to_qdq", "QatConfig", "QatError", "QatNet", "METHODS", "Deployment", "deployment",
           "integer_forward", "integer_accuracy", "run_codes", "LsqQuantizer", "LsqPlusQuantizer", "PactQuantizer",
           "MinMaxObserver", "dorefa_weight", "dorefa_codes", "quantize_codes"]
