"""Validation query / gallery counts of both protocols on the MARS-size metadata index.

Usage: ``python benchmarks/validation_counts.py OUT_DIR`` (OUT_DIR: an empty or new folder;
docs/reference.md, "The validation split"). Prints one Markdown row per (sampling, protocol).
"""

import sys

from reid_core.config import ValidationConfig
from reid_core.data import build_dataset
from reid_core.data import carve_validation
from reid_core.data import write_mars_metadata

train = build_dataset("mars", write_mars_metadata(sys.argv[1])).train
for sampling, extra in (("random", {}), ("guided", {"preset": "paper"})):
    for protocol in ("reference", "one_per_camera"):
        split = carve_validation(
            train, ValidationConfig(sampling=sampling, protocol=protocol, **extra)
        )
        ids = {t.pid for t in split.query}
        own = sum(1 for t in split.gallery if t.pid in ids)
        unmatched = sum(
            1
            for q in split.query
            if not any(g.pid == q.pid and g.camid != q.camid for g in split.gallery)
        )
        frames = sum(len(t.frames) for t in split.query)
        cells = [sampling, protocol, len(ids), len(split.query), unmatched, frames]
        cells += [len(split.gallery), own, len(split.gallery) - own]
        print("| " + " | ".join(map(str, cells)) + " |")
