"""LoRA adapters as data: PEFT folders in and out, factored ΔW algebra, SVD re-factoring."""

from loraport.adapters.lowrank import LowRank, concat, cross_gram, gram, inner, refactor, refactor_dense
from loraport.adapters.peft_io import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    Adapter,
    load_adapter,
    save_adapter,
    target_modules_for,
    write_adapter_files,
)

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "Adapter",
    "LowRank",
    "concat",
    "cross_gram",
    "gram",
    "inner",
    "load_adapter",
    "refactor",
    "refactor_dense",
    "save_adapter",
    "target_modules_for",
    "write_adapter_files",
]
