"""``reid-hpo bench gpu``: its CPU dry run (what a GPU run measures is in BENCHMARKS.md)."""

from __future__ import annotations

import pytest
import torch

from hpo.bench import BenchOptions
from hpo.bench import _gpu
from hpo.bench import load_benchmarks
from hpo.bench._gpu import BASELINE
from hpo.bench._gpu import FP32

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU dry run")


_QUICK_SIZES = _gpu._sizes


def _quick_sizes_at_32x16(quick: bool, cuda: bool) -> dict[str, object]:
    """``--quick``'s sizes with 32x16 frames instead of 64x32: a quarter of the compute in each
    variant's process (the parent passes the sizes to them). On a CPU without native bf16 the
    two bf16 variants dominate the dry run's time; the machinery checked is the same."""
    return {**_QUICK_SIZES(quick, cuda), "height": 32, "width": 16}


def test_cpu_dry_run_measures_every_cpu_variant_against_the_float32_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_gpu, "_sizes", _quick_sizes_at_32x16)
    result = load_benchmarks().get("gpu")(BenchOptions(quick=True))
    rows = {row["variant"]: row for row in result.rows}
    assert list(rows) == [BASELINE, FP32, "bf16", "bf16, channels_last"]
    assert result.details["skipped_without_cuda"] == [
        "fp16 + scaler",
        "bf16, channels_last, compile",
    ]
    assert rows[BASELINE]["speedup"] == 1.0
    assert all(row["clips_per_s"] > 0 and row["gpu_busy"] is None for row in rows.values())
    assert rows["bf16"]["precision"] == "bf16"
    # Host- and device-side batch finishing are bit-identical on the CPU: same loss curve.
    assert rows[FP32]["loss_gap_vs_fp32"] == 0.0
    assert result.summary["fp32_run_to_run_loss_gap"] == 0.0
    curves = result.details["loss_curves"]
    assert all(len(curve) == 5 for curve in curves.values())  # 2 warm-up + 3 timed steps
    assert curves[BASELINE] == curves[FP32]
    assert result.summary["checkpoint_mb"] > 1 and result.summary["checkpoint_write_s"] > 0
    assert result.targets == []  # a CPU cannot judge the GPU targets
    # MARS-size test evaluation, measured per clip and scaled to 11,310 tracklets x 41 clips
    for row in rows.values():
        expected = row["eval_ms_per_clip"] / 1000 * 11310 * 41
        assert row["eval_ms_per_clip"] > 0
        assert row["mars_test_eval_s"] == pytest.approx(expected, rel=0.01, abs=0.2)
