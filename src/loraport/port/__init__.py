"""Port methods: one registry, fitted on anchor pairs, applied to any source adapter."""

# Method plugins: each module registers its methods when imported (a new method: one module here).
from loraport.port import behaviour, layermaps, zero  # noqa: F401  (registration)
from loraport.port.anchors import AnchorPair, AnchorsSpec, load_anchors
from loraport.port.apply import apply_map, copy_port, port_weights
from loraport.port.fitted import FittedMap, fit_map
from loraport.port.methods import METHODS, PortJob, PortMethod, get_method, register_method

__all__ = [
    "METHODS",
    "AnchorPair",
    "AnchorsSpec",
    "FittedMap",
    "PortJob",
    "PortMethod",
    "apply_map",
    "copy_port",
    "fit_map",
    "get_method",
    "load_anchors",
    "port_weights",
    "register_method",
]
