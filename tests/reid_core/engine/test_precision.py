"""The precision policy and the GPU-throughput options, exercised on the CPU (bf16 autocast).

What only a GPU can show (bf16 speed, fp16 loss scaling on CUDA) is measured by
``reid-hpo bench gpu``; here: the policy table, training and evaluation under CPU bf16
autocast, device-side batch finishing, cross-precision resume and unchanged state-dict keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reid_core.config import TrainConfig
from reid_core.data._transforms import normalize_clips
from reid_core.engine import Trainer
from reid_core.engine import load_checkpoint
from reid_core.engine._batch import finish_on_device
from reid_core.engine._checkpoint import checksum_path
from reid_core.engine._checkpoint import save_checkpoint
from reid_core.engine._precision import Precision
from reid_core.engine._precision import resolve_precision
from reid_core.engine._seed import seed_everything
from reid_core.errors import ConfigError
from tests.reid_core.engine.conftest import TinyConfig

# ------------------------------------------------------------------------------ the policy


@pytest.mark.parametrize(
    ("amp", "bf16_gpu", "expected", "scaler"),
    [
        ("auto", True, "bf16", False),
        ("auto", False, "fp16", True),
        ("fp16", True, "fp16", True),
        ("bf16", True, "bf16", False),
        ("off", True, "fp32", False),
        (True, True, "bf16", False),  # a legacy `amp: true` means auto
        (False, False, "fp32", False),
    ],
)
def test_cuda_policy_table(
    amp: object, bf16_gpu: bool, expected: str, scaler: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reid_core.engine._precision._cuda_has_bf16", lambda device: bf16_gpu)
    policy = resolve_precision(amp, "cuda:0")
    assert (policy.name, policy.uses_scaler) == (expected, scaler)


def test_cpu_policy_auto_is_float32_and_bf16_is_cpu_autocast() -> None:
    assert resolve_precision("auto", "cpu").dtype is None
    assert resolve_precision("bf16", "cpu").dtype is torch.bfloat16


def test_settings_a_device_cannot_run_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="amp=fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    monkeypatch.setattr("reid_core.engine._precision._cuda_has_bf16", lambda device: False)
    with pytest.raises(ConfigError, match="no bfloat16 support"):
        resolve_precision("bf16", "cuda")
    # Inference of a checkpoint trained elsewhere falls back to float32 instead.
    assert resolve_precision("fp16", "cpu", strict=False).dtype is None


def test_unknown_amp_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="amp='fp8' must be one of auto, fp16, bf16, off"):
        TrainConfig(amp="fp8")  # type: ignore[arg-type]


def test_legacy_boolean_configs_still_load() -> None:
    assert TrainConfig.from_dict({"amp": False}).amp == "off"
    assert TrainConfig.from_dict({"amp": True}).amp == "auto"


# ------------------------------------------------------------------------ device batches


def test_device_side_finish_equals_the_host_normalisation_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (6, 4, 3, 32, 16), dtype=torch.uint8, generator=g)
    boxes = torch.tensor(
        [[3, 2, 10, 5], [0, 0, 0, 0], [0, 0, 32, 16], [31, 15, 1, 1], [5, 5, 0, 3], [2, 3, 7, 2]]
    )
    fill = (0.1, -0.2, 0.3)
    out = finish_on_device(clips, boxes, torch.device("cpu"), fill)
    assert torch.equal(out, normalize_clips(clips, boxes, fill))
    for channel, value in enumerate(fill):  # the erased box, in every frame
        assert (out[0, :, channel, 3:13, 2:7] == value).all()
    assert torch.equal(out[1], normalize_clips(clips)[1])
    per_frame = torch.zeros(6, 4, 2, 4, dtype=torch.int64)  # ClipAugment's plain + labelled
    per_frame[0, 1] = torch.tensor([[3, 2, 10, 5], [20, 10, 4, 4]])
    out = finish_on_device(clips, per_frame, torch.device("cpu"), fill)
    assert torch.equal(out, normalize_clips(clips, per_frame, fill))
    assert (out[0, 1, 0, 20:24, 10:14] == fill[0]).all() and (out[0, 1, 0, 3:13, 2:7] == 0.1).all()
    assert torch.equal(out[0, 0], normalize_clips(clips)[0, 0])


# ---------------------------------------------------------------- training and evaluation


def test_bf16_autocast_trains_and_evaluates_on_cpu(tiny_cfg: TinyConfig) -> None:
    trainer = Trainer(tiny_cfg(amp="bf16", epochs=1))
    assert trainer.precision.name == "bf16" and not trainer.scaler.is_enabled()
    result = trainer.fit()
    losses = result.history[0]["losses"]
    assert torch.isfinite(torch.tensor(losses["total"]))
    assert result.final_metrics is not None and 0.0 <= result.final_metrics["mAP"] <= 1.0
    # Parameters stay float32 (autocast casts per op); the checkpoint keeps its keys.
    assert all(p.dtype is torch.float32 for p in trainer.model.parameters())
    off = Trainer(tiny_cfg(epochs=1, output_dir=str(Path(trainer.output_dir).parent / "off")))
    assert trainer.model.state_dict().keys() == off.model.state_dict().keys()


def test_channels_last_keeps_keys_and_trains(tiny_cfg: TinyConfig) -> None:
    trainer = Trainer(tiny_cfg(channels_last=True, epochs=1))
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    result = trainer.fit()
    assert torch.isfinite(torch.tensor(result.history[0]["losses"]["total"]))
    plain = Trainer(tiny_cfg(epochs=1, output_dir=str(Path(trainer.output_dir).parent / "p")))
    assert trainer.model.state_dict().keys() == plain.model.state_dict().keys()


def test_compiled_model_keeps_its_state_dict_keys(tiny_cfg: TinyConfig) -> None:
    compiled = Trainer(tiny_cfg(compile=True))
    plain = Trainer(tiny_cfg(output_dir=str(Path(compiled.output_dir).parent / "plain")))
    assert list(compiled.model.state_dict()) == list(plain.model.state_dict())
    plain.model.load_state_dict(compiled.model.state_dict())  # and they load either way


# ------------------------------------------------------------------ cross-precision resume


def _scaled_fp16_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the trainer run fp16 autocast with an enabled GradScaler on the CPU, as a GPU
    worker with amp=fp16 (or auto on a pre-Ampere GPU) would."""
    policy = Precision("fp16", "cpu", torch.float16)
    monkeypatch.setattr("reid_core.engine._step.resolve_precision", lambda amp, dev: policy)


def test_float32_checkpoint_resumes_with_the_fp16_scaler(
    tiny_cfg: TinyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg(output_dir=str(tmp_path / "run"))
    first = Trainer(replace(cfg, epochs=1)).fit()
    assert load_checkpoint(first.checkpoint)["scaler"] == {}  # written without a scaler

    _scaled_fp16_on_cpu(monkeypatch)
    resumed = Trainer(replace(cfg, amp="fp16"))
    assert resumed.scaler.is_enabled()
    result = resumed.fit(resume_from=first.checkpoint)
    assert result.epochs_run == 2 and result.history[0]["epoch"] == 2
    assert load_checkpoint(result.checkpoint)["scaler"]["scale"] > 0  # the new scaler's state


def test_fp16_checkpoint_resumes_in_float32(
    tiny_cfg: TinyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg(output_dir=str(tmp_path / "run"))
    with monkeypatch.context() as patch:
        _scaled_fp16_on_cpu(patch)
        first = Trainer(replace(cfg, amp="fp16", epochs=1)).fit()
    assert load_checkpoint(first.checkpoint)["scaler"]  # has a scale
    result = Trainer(cfg).fit(resume_from=first.checkpoint)
    assert result.epochs_run == 2


# ------------------------------------------------------------------------- determinism


def test_deterministic_switches_torch_to_deterministic_algorithms() -> None:
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.benchmark
    finally:
        seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


# -------------------------------------------------------------------------- checkpoints


def test_checkpoint_digest_is_hashed_while_writing(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "epoch_0000.pt", {"w": torch.randn(300_000)})
    written = checksum_path(path).read_text().split()[0]
    assert written == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(load_checkpoint(path)["w"], torch.load(path, weights_only=True)["w"])
