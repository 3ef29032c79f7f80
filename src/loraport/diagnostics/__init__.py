"""Diagnostics of adapters: ΔW spectra and depth profiles, overlap and PCA between adapters, and
what an adapter does to a base's hidden states (CKA, relative change).

    from loraport.diagnostics import module_spectra, depth_profile, adapter_overlap, adapter_pca

    ad = load_adapter("runs/y-math_add")
    mods = {m: ad.lowrank(m) for m in ad.modules}
    module_spectra(mods)["model.layers.0.mlp.up_proj"].effective_rank
    depth_profile(mods)["down_proj"]                       # ‖ΔW‖ per layer
    adapter_pca([mods, other_mods, third_mods], dims=3).coords
    adapter_cka(model, mods, batches)                       # per layer, base vs adapted states
"""

from loraport.diagnostics.compare import (
    PCA,
    Overlap,
    adapter_overlap,
    adapter_pca,
    delta_cosine,
    subspace_overlap,
)
from loraport.diagnostics.spectrum import (
    SpectrumStats,
    depth_profile,
    effective_rank,
    energy_rank,
    module_spectra,
    singular_values,
    spectrum_stats,
    stable_rank,
    top_energy,
)
from loraport.diagnostics.states import adapter_cka, layer_states, merged, state_change

__all__ = [
    "PCA",
    "Overlap",
    "SpectrumStats",
    "adapter_cka",
    "adapter_overlap",
    "adapter_pca",
    "delta_cosine",
    "depth_profile",
    "effective_rank",
    "energy_rank",
    "layer_states",
    "merged",
    "module_spectra",
    "singular_values",
    "spectrum_stats",
    "stable_rank",
    "state_change",
    "subspace_overlap",
    "top_energy",
]
