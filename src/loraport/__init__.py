"""loraport: port LoRA adapters between base LLMs and measure what survives.

    from loraport.adapters import load_adapter
    from loraport.port import fit_map, apply_map
"""

__version__ = "0.1.0"
