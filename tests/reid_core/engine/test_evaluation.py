"""Feature extraction (clip averaging) and the distance used for ranking."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import pytest
import torch
from torch import nn

from reid_core.data import build_dataset
from reid_core.data import build_test_loader
from reid_core.engine import evaluation_chunk
from reid_core.engine import extract_features
from reid_core.engine import squared_euclidean
from reid_core.engine._chunk import MAX_CHUNK
from reid_core.errors import EvaluationError
from reid_core.models import build_model


class _Out(NamedTuple):
    logits: torch.Tensor
    features: torch.Tensor
    bn_features: torch.Tensor


class _MeanPixel(nn.Module):
    """Feature of a clip = mean pixel value per channel; remembers its batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> _Out:
        self.batch_sizes.append(x.shape[0])
        feats = x.mean(dim=(1, 3, 4))
        return _Out(feats, feats, feats)


def _tracklet(values: list[float], pid: int, camid: int) -> tuple[torch.Tensor, int, int]:
    clips = torch.stack([torch.full((2, 3, 4, 2), v) for v in values])  # [N, T, 3, H, W]
    return clips, pid, camid


def test_tracklet_feature_is_the_mean_of_its_clip_features() -> None:
    loader = [_tracklet([1.0, 2.0, 6.0], 7, 0), _tracklet([4.0], 8, 1)]
    model = _MeanPixel().train()
    feats, pids, camids = extract_features(model, loader, device="cpu", chunk=2)
    assert torch.allclose(feats, torch.tensor([[3.0] * 3, [4.0] * 3]))
    assert pids.tolist() == [7, 8]
    assert camids.tolist() == [0, 1]
    # 3 clips in chunks of 2: [1, 2], then the third clip shares a batch with the next tracklet.
    assert model.batch_sizes == [2, 2]
    assert model.training  # the train/eval mode is restored


def test_clips_of_short_tracklets_share_forward_passes() -> None:
    loader = [_tracklet([float(i)], i, 0) for i in range(10)]
    model = _MeanPixel()
    feats, pids, _ = extract_features(model, loader, device="cpu", chunk=4)
    assert model.batch_sizes == [4, 4, 2]
    assert torch.equal(feats[:, 0], torch.arange(10, dtype=torch.float32))
    assert pids.tolist() == list(range(10))


def test_batched_features_of_a_real_model_equal_one_tracklet_at_a_time() -> None:
    model = build_model(
        "ta_bt", num_classes=5, backbone="resnet10", pretrained=False, input_size=(32, 16)
    )
    generator = torch.Generator().manual_seed(0)
    loader = [
        (torch.randn(n, 4, 3, 32, 16, generator=generator), pid, pid % 2)
        for pid, n in enumerate([1, 3, 2, 5, 1, 1, 4])
    ]
    batched, _, _ = extract_features(model, loader, device="cpu", chunk=6)
    one_by_one = torch.cat(
        [extract_features(model, [item], device="cpu", chunk=6)[0] for item in loader]
    )
    assert torch.allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)


def test_leading_batch_dimension_of_one_is_accepted() -> None:
    clips, pid, camid = _tracklet([1.0, 3.0], 5, 2)
    loader = [(clips.unsqueeze(0), torch.tensor([pid]), torch.tensor([camid]))]
    feats, pids, _ = extract_features(_MeanPixel(), loader, device="cpu")
    assert torch.allclose(feats, torch.full((1, 3), 2.0))
    assert pids.tolist() == [5]


def test_tracklet_without_clips_is_an_evaluation_error() -> None:
    loader = [_tracklet([1.0], 7, 0), (torch.empty(0, 2, 3, 4, 2), 8, 1)]
    with pytest.raises(EvaluationError, match="tracklet 1 of the loader has no clips"):
        extract_features(_MeanPixel(), loader, device="cpu")


def test_empty_loader_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match="empty"):
        extract_features(_MeanPixel(), [], device="cpu")


def test_squared_euclidean_matches_cdist_squared() -> None:
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(5, 16, generator=generator)
    g = torch.randn(7, 16, generator=generator)
    assert torch.allclose(squared_euclidean(q, g), torch.cdist(q, g) ** 2, atol=1e-4)
    assert squared_euclidean(q, q).diagonal().min() >= 0.0


def test_uint8_clips_finished_on_the_device_give_the_host_paths_features(
    tiny_cfg: Callable[..., Any],
) -> None:
    """The test loader's ``uint8`` clips, normalised where the model runs (as in training),
    give the features of the host-normalised ``float32`` clips."""
    data = tiny_cfg().data
    query = build_dataset("mars", data.root).query
    model = build_model(
        "ta_bt", num_classes=5, backbone="resnet10", pretrained=False, input_size=(32, 16)
    )
    raw = build_test_loader(query, data, finish_on_host=False)
    assert next(iter(raw))[0].dtype == torch.uint8
    on_host, pids, _ = extract_features(model, build_test_loader(query, data), device="cpu")
    on_device, same_pids, _ = extract_features(model, raw, device="cpu", chunk=3)
    assert pids.tolist() == same_pids.tolist()
    assert torch.allclose(on_host, on_device, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------- a test batch for the device


def test_evaluation_chunk_is_the_configured_one_on_a_cpu() -> None:
    assert evaluation_chunk(7, torch.device("cpu"), (4, 3, 224, 112)) == 7


@pytest.mark.parametrize(
    ("free_gib", "expected"),
    [(40, MAX_CHUNK), (4, 41), (0.01, 1)],  # 51.4 MB per 224x112 4-frame clip at the bound
)
def test_evaluation_chunk_on_cuda_follows_the_free_memory(
    monkeypatch: pytest.MonkeyPatch, free_gib: float, expected: int
) -> None:
    seen = []

    def mem_get_info(device: torch.device) -> tuple[int, int]:
        seen.append(device)
        return int(free_gib * 2**30), 80 * 2**30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    cuda = torch.device("cuda", 1)
    assert evaluation_chunk(32, cuda, (4, 3, 224, 112)) == expected
    assert seen == [cuda]


def test_feature_extraction_sizes_its_passes_for_a_cuda_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batcher asks once, at the first clips; nothing runs until a pass is full."""
    from reid_core.engine._evaluation import _ClipBatcher
    from reid_core.engine._precision import resolve_precision

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device: (4 * 2**30, 80 * 2**30))
    batcher = _ClipBatcher(
        nn.Identity(), torch.device("cuda", 0), 32, resolve_precision("off", "cpu")
    )
    batcher.add(torch.zeros(40, 4, 3, 224, 112, dtype=torch.uint8), owner=0)
    assert batcher.chunk == 41 and len(batcher.pending_owners) == 40  # not the configured 32
    cpu = _ClipBatcher(nn.Identity(), torch.device("cpu"), 32, resolve_precision("off", "cpu"))
    cpu.add(torch.zeros(1, 4, 3, 8, 4), owner=0)
    assert cpu.chunk == 32
