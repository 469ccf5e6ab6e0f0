"""accelsim: a bit-accurate simulator of a quantized neural-network inference accelerator."""

__version__ = "0.1.0"
