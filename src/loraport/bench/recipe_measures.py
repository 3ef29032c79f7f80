"""Loss and weight diagnostics of a finished recipe_transfer run (issue 19, items 3 and 5).

    measure_recipe_run("runs/recipe_transfer")      # or: loraport recipe-measures runs/recipe_transfer

The run's eval cells score accuracy; this pass adds what the report's loss tax, mechanistic checks
and their correlations need, as `recipe_measures.json` in the run folder, then rebuilds the report.
The report reads that file when it is there (so `loraport report` rebuilds from it, as from the
records) and says where it is not.

- "loss": per record on every base (the base alone, each adapter trained on it, each port; on Y
  in full precision and every scheme, on X and the tiers in full precision) each of the first
  LOSS_ITEMS eval items' mean token negative log-likelihood of its reference completion after its
  prompt ("nll", evaluate.continuation_logprobs, tokenized as in training) and the same loss in
  bits per UTF-8 byte of the completion ("bpb": the summed nats / (ln 2 · bytes)), which does
  not depend on the tokenizer, so X (bytes) and Y (BPE) are on one scale, as the reference study's
  mBPB. Y's quantized records are scored on the base quantized exactly as their eval cell
  quantized it (bench.quant_eval.quantized_base: same scheme, same calibration items), with the
  adapter merged in full precision.
- "adapters": per full-precision adapter record (every train cell on X and Y, every port): the ΔW
  spectrum over its modules (mean effective rank, stable rank and top-k energy share; ‖ΔW‖_F of all
  modules together), ‖ΔW‖_F per layer (roles pooled), linear CKA between the base's and the adapted
  hidden states per layer on CKA_TEXTS train items of the task (never eval items), and the subspace
  overlap and cosine with its reference: none's adapter of the same base, task and seed, or, for a
  port, the Y adapter of its recipe and seed (ported vs oracle).
- "pca": per task and base, every recipe's adapters (all seeds) in 3-D (diagnostics.adapter_pca).

Records without an adapter on disk (failed or not computed) are skipped; the report shows "—".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from loraport.bench.recipe_study import CALIBRATION, NONE
from loraport.bench.store import Store
from loraport.errors import LoraportError
from loraport.io import atomic_file

FILE = "recipe_measures.json"
#: Eval items (the first of the study's) each loss is computed on: a per-item loss varies far less
#: than a 0/1 score, so a paired CI over 100 items is tight, and 300 would triple the pass's main
#: cost (one scoring pass per record on Y: ~150 in studies/recipe_transfer.yaml).
LOSS_ITEMS = 100
#: Train items of the task whose hidden states CKA compares (positions capped by diagnostics.states).
CKA_TEXTS = 16


def base_of(study: dict[str, Any], side: str) -> str:
    """The base a record of `side` is scored on: X, Y (its adapters and the ports) or a tier."""
    if side == "x":
        return study["source"]
    if side.startswith("tier"):
        return study["tiers"][int(side[4:])]
    return study["target"]


def _adapter_dir(run_dir: Path, store: Store, record: dict[str, Any]) -> Path | None:
    """The record's adapter folder (its recorded path, else the store's), None if absent."""
    rel = (record.get("provenance") or {}).get("adapter")
    key = record.get("port") or record.get("train")
    for path in ([run_dir / rel] if rel else []) + ([store.adapter(key)] if key else []):
        if (path / "adapter_config.json").is_file():
            return path
    return None


class _Factors:
    """Each adapter's {module: LowRank}, loaded once."""

    def __init__(self) -> None:
        self.cache: dict[Path, dict[str, Any]] = {}

    def __call__(self, path: Path) -> dict[str, Any]:
        from loraport.adapters import load_adapter

        if path not in self.cache:
            ad = load_adapter(path)
            self.cache[path] = {m: ad.lowrank(m) for m in ad.modules}
        return self.cache[path]


def _eval_items(task: str, n: int, seed: int) -> list[Any]:
    from loraport.tasks import resolve_task

    t = resolve_task(task)
    cap = t.available("eval")
    return t.items("eval", n if cap is None else min(n, cap), seed=seed)


def losses(run_dir: Path, study: dict[str, Any], records: list[dict[str, Any]], store: Store, factors, log):
    """Record name -> {"ids", "nll", "bpb"} for every record with its adapter present (or a base)."""
    from loraport.bench.quant_eval import quantized_base
    from loraport.diagnostics import merged
    from loraport.evaluate import continuation_logprobs
    from loraport.models import load_model

    n, seed = study["eval"]["n"], study["eval"]["seed"]
    out: dict[str, dict[str, list]] = {}
    for task in study["heldout"]:
        items = _eval_items(task, n, seed)[:LOSS_ITEMS]
        pairs = [(it.prompt, it.completion()) for it in items]
        ids = [it.id for it in items]
        bits = [math.log(2) * max(len(c.encode("utf-8")), 1) for _, c in pairs]
        groups: dict[tuple[str, str | None], list[tuple[str, Path | None]]] = {}
        for r in records:
            if r["task"] != task or "missing" in r:
                continue
            path = None if r["condition"] == "base" else _adapter_dir(run_dir, store, r)
            if r["condition"] == "base" or path is not None:
                groups.setdefault((base_of(study, r["side"]), r.get("scheme")), []).append((r["name"], path))
        for (base, scheme), todo in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            if scheme is None:
                model, tok, _ = load_model(base)
            else:
                model, tok, _, _ = quantized_base(base, task, scheme, CALIBRATION, n, seed)
            model.eval()
            for name, path in todo:
                with merged(model, factors(path) if path is not None else {}):
                    lps = continuation_logprobs(model, tok, pairs)
                out[name] = {
                    "ids": ids,
                    "nll": [round(-s / max(k, 1), 6) for s, k in lps],
                    "bpb": [round(-s / b, 6) for (s, _), b in zip(lps, bits, strict=True)],
                }
            log(f"loss: {task} on {base} [{scheme or 'full precision'}] {len(todo)} conditions")
    return out


def _summary(mods: dict[str, Any]) -> dict[str, Any]:
    from loraport.diagnostics import depth_profile, module_spectra

    spectra = module_spectra(mods)
    mean = lambda f: sum(getattr(s, f) for s in spectra.values()) / len(spectra)  # noqa: E731
    profile = depth_profile(mods)
    depth = [
        math.sqrt(sum(v[i] ** 2 for v in profile.values())) for i in range(len(next(iter(profile.values()))))
    ]
    return {
        "effective_rank": mean("effective_rank"),
        "stable_rank": mean("stable_rank"),
        "top_energy": mean("top_energy"),
        "norm": math.sqrt(sum(s.norm**2 for s in spectra.values())),
        "depth": depth,
    }


def diagnostics(
    run_dir: Path, study: dict[str, Any], records: list[dict[str, Any]], store: Store, factors, log
):
    """(adapters, pca): per full-precision adapter record its diagnostics; per task and base a PCA."""
    from loraport.bench.quant_eval import calibration_texts
    from loraport.diagnostics import adapter_cka, adapter_overlap, adapter_pca
    from loraport.models import load_model
    from loraport.quant import calibration_batches

    n, seed = study["eval"]["n"], study["eval"]["seed"]
    adapters: dict[str, dict[str, Any]] = {}
    pca: list[dict[str, Any]] = []
    for task in study["heldout"]:
        texts = calibration_texts(task, CKA_TEXTS, CALIBRATION["seed"], n, seed)
        for side, base in (("x", study["source"]), ("y", study["target"])):
            recs = [
                r
                for r in records
                if r["task"] == task
                and r.get("scheme") is None
                and r["condition"] in ("adapter", "port")
                and (r["side"] == side or (side == "y" and r["side"].startswith("port ")))
            ]
            paths = {r["name"]: _adapter_dir(run_dir, store, r) for r in recs}
            recs = [r for r in recs if paths[r["name"]] is not None]
            if not recs:
                continue
            model, tok, _ = load_model(base)
            model.eval()
            batches = calibration_batches(tok, texts)
            own = {(r["regularizer"], r["seed"]): r["name"] for r in recs if r["condition"] == "adapter"}
            for r in recs:
                mods = factors(paths[r["name"]])
                ref = own.get((r["regularizer"] if r["condition"] == "port" else NONE, r["seed"]))
                row = {"task": task, "side": r["side"], "regularizer": r["regularizer"], "seed": r["seed"]}
                row.update(_summary(mods))
                row["cka"] = adapter_cka(model, mods, batches)
                row["cka_mean"] = sum(row["cka"]) / len(row["cka"])
                row["reference"] = ref if ref != r["name"] else None
                if row["reference"] is not None:
                    o = adapter_overlap(mods, factors(paths[ref]))
                    row["overlap"], row["cosine"] = o.overlap, o.cosine
                adapters[r["name"]] = row
            plain = sorted((r for r in recs if r["condition"] == "adapter"), key=lambda r: r["name"])
            if len(plain) >= 2:
                p = adapter_pca([factors(paths[r["name"]]) for r in plain], dims=3)
                pca.append(
                    {
                        "task": task,
                        "side": side,
                        "names": [r["name"] for r in plain],
                        "regularizers": [r["regularizer"] for r in plain],
                        "coords": [[round(float(v), 6) for v in row] for row in p.coords],
                        "explained": p.explained,
                    }
                )
            log(f"diagnostics: {task} on {side.upper()} {len(recs)} adapters")
    return adapters, pca


def measure_recipe_run(
    run_dir: str | Path, cache: str | Path | None = None, threads: int | None = None, log=print
) -> dict[str, Any]:
    """Compute the losses and diagnostics of a finished recipe_transfer run into its
    recipe_measures.json and rebuild its report; returns what was written."""
    from loraport.models.chat import use_chat_template
    from loraport.parallel import torch_threads
    from loraport.report import build_report

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise LoraportError(f"{run_dir}: not a run directory (no run.json)")
    meta = json.loads((run_dir / "run.json").read_text())
    study = meta["study"]
    if study.get("kind") != "recipe_transfer":
        raise LoraportError(
            f"{run_dir}: a {study.get('kind', 'port')} run; measures are for recipe_transfer runs"
        )
    records = [json.loads(p.read_text()) for p in sorted((run_dir / "records").glob("*.json"))]
    store, factors = Store(run_dir, cache), _Factors()
    with torch_threads(threads), use_chat_template(study.get("chat_template", "auto")):
        loss = losses(run_dir, study, records, store, factors, log)
        adapters, pca = diagnostics(run_dir, study, records, store, factors, log)
    out = {"loss": loss, "adapters": adapters, "pca": pca, "cka_texts": CKA_TEXTS, "loss_items": LOSS_ITEMS}
    with atomic_file(run_dir / FILE) as fh:
        json.dump(out, fh, sort_keys=True)
    build_report(run_dir)
    return out
