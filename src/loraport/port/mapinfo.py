"""What a map folder says about itself: the README card written beside it, and `verify_map`.

info = verify_map("maps/q2l")                              # header + full content hash
info = verify_map("maps/q2l", anchors="anchors.yaml")      # + every anchor's SHA-256
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loraport.io import sha256_file
from loraport.port.mapfile import HASH_FIELD, MAP_JSON, MAP_TENSORS, MapError, read_header, verify_tensors


def render_card(meta: dict[str, Any]) -> str:
    """README.md of a map folder: what it maps, how it was fitted, how to use and check it."""
    opts = ", ".join(f"{k}={v}" for k, v in meta["options"].items()) or "defaults"
    tasks = ", ".join(a["task"] for a in meta["anchors"])
    fp = meta["fingerprints"]
    size = meta["tensors"]["bytes"] / 1e6
    return f"""# loraport map: {meta["source_base"]} → {meta["target_base"]}

Ports a LoRA adapter trained on **{meta["source_base"]}** to **{meta["target_base"]}** with the
anchor method `{meta["method"]}` ({opts}), fitted on N = {meta["n"]} anchor tasks (the same task's
LoRA trained on both bases): {tasks}.

| | |
|---|---|
| output | rank {meta["rank"]}, alpha {meta["alpha"]}, {len(meta["target_modules"])} target modules |
| source base | `{meta["source_base"]}` (module shapes {fp["source"]["arch"][:12]}, weights {(fp["source"]["weights"] or "not recorded")[:12]}) |
| target base | `{meta["target_base"]}` (module shapes {fp["target"]["arch"][:12]}, weights {(fp["target"]["weights"] or "not recorded")[:12]}) |
| layer map | target layer → source layer {meta["layer_map"]} |
| fitted by | loraport {meta["loraport_version"]}, seed {meta["seed"]}, in {meta["fit_seconds"]} s |
| anchor set | SHA-256 {meta["anchor_set_hash"]} (per-anchor digests in {MAP_JSON}) |
| content | SHA-256 {meta[HASH_FIELD]} ({MAP_TENSORS}, {size:.1f} MB) |

The folder is self-contained: {MAP_TENSORS} holds the method's state and the anchors' factors
(float16, normalised; plain safetensors, no pickle), so ports need neither the anchors nor their
paths. Each port reads the map once and checks its bytes against the content hash.

    loraport port --map THIS_FOLDER --adapter MY_ADAPTER --target-base {meta["target_base"]} --out OUT
    loraport map verify THIS_FOLDER [--anchors ANCHORS.yaml]

How it was made: the weights a method gives each target anchor come from the N×N Gram matrices of
the anchors' ΔW (Frobenius inner products); a port predicts Σ_j w_j ΔW_j over the target anchors
and re-factors it to rank {meta["rank"]} (truncated SVD). See `loraport methods` for what
`{meta["method"]}` regresses on. Packing the anchors in float16 keeps a port within 1e-3 relative
Frobenius error of ΔW per module of the float64 port from the original anchors (measured by
loraport's tests on small models and by benchmarks/port_speed.py at 3B shapes).
"""


def verify_map(path: str | Path, anchors: str | Path | None = None) -> dict[str, Any]:
    """Check a map folder: its header and content hash (reading every byte once), and, given an
    ANCHORS.yaml, that its anchors are the ones the map was fitted on (same tasks, same SHA-256).
    Returns a summary; raises MapError (or AnchorError) naming the file and field."""
    from loraport.adapters import load_adapter
    from loraport.port.anchors import load_anchors

    path = Path(path)
    meta = read_header(path)
    verify_tensors(path, meta)
    summary = {
        "map": str(path),
        "method": meta["method"],
        "source_base": meta["source_base"],
        "target_base": meta["target_base"],
        "n": meta["n"],
        HASH_FIELD: meta[HASH_FIELD],
        "bytes": meta["tensors"]["bytes"],
        "anchors_checked": 0,
    }
    if anchors is None:
        return summary
    spec = load_anchors(anchors)
    recorded = [a["task"] for a in meta["anchors"]]
    if spec.tasks != recorded:
        raise MapError(
            f"{anchors}: field pairs lists tasks {spec.tasks}, the map was fitted on {recorded} "
            f"({path / MAP_JSON}, field anchors)"
        )
    for i, (pair, rec) in enumerate(zip(spec.pairs, meta["anchors"], strict=True)):
        for side in ("source", "target"):
            ad = load_adapter(getattr(pair, side))
            if sha256_file(ad.weights_file) != rec[f"{side}_sha256"]:
                raise MapError(
                    f"{ad.weights_file}: differs from the {side} anchor of task {pair.task!r} the map "
                    f"was fitted on ({path / MAP_JSON}, field anchors[{i}].{side}_sha256)"
                )
    summary["anchors_checked"] = 2 * len(spec.pairs)
    return summary
