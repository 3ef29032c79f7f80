"""Architecture knowledge as data: module roles, spaces and shapes per family; layer maps."""

from loraport.arch.family import ROLES, Arch, ModuleInfo, Part, arch_for, families, family_for_model_type
from loraport.arch.layers import LAYER_MAPS, layer_map, relative_depth

__all__ = [
    "LAYER_MAPS",
    "ROLES",
    "Arch",
    "ModuleInfo",
    "Part",
    "arch_for",
    "families",
    "family_for_model_type",
    "layer_map",
    "relative_depth",
]
