"""Port methods: one registry, fitted on anchor pairs, applied to any source adapter."""

from loraport.port.anchors import AnchorPair, AnchorsSpec, load_anchors
from loraport.port.fitted import FittedMap, apply_map, copy_port, fit_map, port_weights
from loraport.port.methods import METHODS, PortMethod, get_method

__all__ = [
    "METHODS",
    "AnchorPair",
    "AnchorsSpec",
    "FittedMap",
    "PortMethod",
    "apply_map",
    "copy_port",
    "fit_map",
    "get_method",
    "load_anchors",
    "port_weights",
]
