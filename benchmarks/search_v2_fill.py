"""Fill the surrogate-v2 cache of ``reid-hpo bench search-v2`` in resumable shards.

One shard = one configuration of the Sobol design x one training seed (full 24-epoch schedule
plus the 3- and 8-epoch compressed ones), written atomically to
benchmarks/data/search_v2/shards/; shards already present are skipped, so the command can be
stopped and rerun at any time. Stops starting new shards after ``--minutes``.

    python benchmarks/search_v2_fill.py --configs 0-7 --seeds 0,1,2 --minutes 8
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from hpo.bench._surrogate import SHARD_DIR
from hpo.bench._surrogate import mars_space
from hpo.bench._surrogate import prepare_data
from hpo.bench._surrogate import pretrain_backbone
from hpo.bench._surrogate import shard_path
from hpo.bench._surrogate import sobol_design
from hpo.bench._surrogate import train_shard


def _span(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="0-47", help="Design indices, e.g. 0-47.")
    parser.add_argument("--seeds", default="0,1", help="Training seeds, comma-separated.")
    parser.add_argument("--design-size", type=int, default=64, help="Sobol points drawn.")
    parser.add_argument("--minutes", type=float, default=8.0, help="Start no shard after this.")
    parser.add_argument("--part", default="0/1", help="k/n: this process takes every n-th shard.")
    parser.add_argument(
        "--pretrain", action="store_true", help="Write the starting weights, then stop."
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    if args.pretrain:
        with tempfile.TemporaryDirectory(prefix="reid-hpo-v2-pretrain-") as tmp:
            started = time.monotonic()
            path = pretrain_backbone(Path(tmp))
        print(f"wrote {path} in {time.monotonic() - started:.1f}s", flush=True)
        return
    k, n = (int(x) for x in args.part.split("/"))
    design = sobol_design(args.design_size, mars_space())
    todo = [(c, int(s)) for s in args.seeds.split(",") for c in _span(args.configs)]
    todo = [item for position, item in enumerate(todo) if position % n == k]
    deadline = time.monotonic() + 60 * args.minutes
    with tempfile.TemporaryDirectory(prefix="reid-hpo-v2-data-") as tmp:
        data_root = prepare_data(Path(tmp))
        for index, seed in todo:
            if shard_path(index, seed).exists():
                continue
            if time.monotonic() > deadline:
                break
            started = time.monotonic()
            train_shard(index, seed, design=design, data_root=data_root, folder=SHARD_DIR)
            print(f"shard c{index:03d}_s{seed}: {time.monotonic() - started:.1f}s", flush=True)
    left = sum(not shard_path(c, s).exists() for c, s in todo)
    print(f"left in this part: {left}", flush=True)


if __name__ == "__main__":
    main()
