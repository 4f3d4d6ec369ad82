"""Each preset equals, field by field, the recipe of its row as written from the reference code
(``tests/data/reference_recipes.json``: every value annotated with the reference file:line it
was read from), and README's table shows each row's published numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reid_core.config import TrainConfig
from reid_core.presets import PRESETS
from reid_core.presets import apply_preset

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((REPO_ROOT / "tests/data/reference_recipes.json").read_text())["rows"]


def _leaf(cfg: TrainConfig, path: str) -> Any:
    value: Any = cfg
    for part in path.split("."):
        value = getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


def test_every_row_of_the_reference_has_a_preset_and_no_preset_is_invented() -> None:
    assert sorted(PRESETS) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_the_preset_is_the_references_recipe_field_by_field(name: str) -> None:
    table = REFERENCE[name]["values"]
    for path, entry in table.items():
        assert entry["from"], f"{name}.{path} has no reference source"
    preset = PRESETS[name]
    assert sorted(preset.values) == sorted(table), "the preset sets fields the table lacks"
    cfg = apply_preset(TrainConfig(), name)
    # A default TrainConfig with different values shows that the preset, not the default, set them.
    for path, entry in table.items():
        assert _leaf(cfg, path) == entry["value"], f"{name}: {path} ({entry['from']})"
    assert dict(preset.published) == REFERENCE[name]["published"]


def _readme_rows() -> dict[str, list[str]]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From a study to the reference's table", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells[0].strip("`") in PRESETS:
            rows[cells[0].strip("`")] = cells
    return rows


def test_readme_shows_each_rows_published_numbers_with_and_without_reranking() -> None:
    rows = _readme_rows()
    assert sorted(rows) == sorted(PRESETS)
    for name, cells in rows.items():
        shown = [float(x) for x in re.findall(r"\d+\.\d", " ".join(cells[2:6]))]
        published = PRESETS[name].published
        expected = [
            published[key]
            for metric in ("mAP", "rank1", "rank5", "rank20")
            for key in (metric, f"rerank_{metric}")
            if key in published
        ]
        assert shown == expected, name
