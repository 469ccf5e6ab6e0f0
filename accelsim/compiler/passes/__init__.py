"""Graph passes over the QGraph before lowering: reshape checks (NHWC order) and DRAM layout."""

from .layout import DramLayout, align, plan_dram, storage_types
from .reshapes import check_reshapes

__all__ = ["DramLayout", "align", "plan_dram", "storage_types", "check_reshapes"]
