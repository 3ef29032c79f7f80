"""Cold build time of the embedded zoo on this machine.

    python benchmarks/zoo_build.py            # build every zoo model into a fresh, empty cache
    python benchmarks/zoo_build.py --recorded # only print the times recorded by earlier builds
    python benchmarks/zoo_build.py --cache ~/.cache/loraport   # build what is missing there

Each model's own build time (corpus, tokenizer, pretraining, save) is what its zoo.json records;
the total is their sum, which is what `loraport zoo build` costs on a clean machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from loraport.zoo import build, build_record, zoo_specs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recorded", action="store_true", help="read the current cache's records")
    ap.add_argument("--cache", help="build into this cache (default: a fresh temporary one)")
    args = ap.parse_args()
    if args.cache:
        os.environ["LORAPORT_CACHE"] = args.cache
    elif not args.recorded:
        os.environ["LORAPORT_CACHE"] = tempfile.mkdtemp(prefix="loraport-zoo-bench-")
    total = 0.0
    print(f"threads={torch.get_num_threads()} cache={os.environ.get('LORAPORT_CACHE', '~/.cache/loraport')}")
    print("| model | role | parameters | pretrain steps | final loss | build s |")
    print("|---|---|---|---|---|---|")
    for name, spec in zoo_specs().items():
        if not args.recorded:
            start = time.perf_counter()
            build(name, progress=False)
            wall = time.perf_counter() - start
        rec = build_record(name)
        if rec is None:
            print(f"| {name} | {spec.role} | not built | | | |")
            continue
        sec = rec["seconds"] if args.recorded else round(wall, 1)
        total += sec
        print(
            f"| {name} | {spec.role} | {rec['parameters']:,} | {spec.pretrain.steps} | {rec['final_loss']} | {sec} |"
        )
    print(f"total: {total:.0f} s ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
