"""Quantization-aware training (PyTorch, the ``qat`` extra): fake-quant modules whose forward pass
quantizes as ONNX Runtime does and whose backward pass is each method's straight-through
estimator.  Importing this package needs torch."""

from .fake import (LsqPlusQuantizer, LsqQuantizer, MinMaxObserver, PactQuantizer, dorefa_codes, dorefa_weight,
                   quantize_codes)

__all__ = ["LsqQuantizer", "LsqPlusQuantizer", "PactQuantizer", "MinMaxObserver", "dorefa_weight", "dorefa_codes",
           "quantize_codes"]
