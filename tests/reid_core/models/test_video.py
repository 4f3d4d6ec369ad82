"""Video models TP / TA / TA_BT: shapes, attention, BNNeck, input-size contract, sizes."""

from __future__ import annotations

import pytest
import torch

from reid_core.config import ModelConfig
from reid_core.errors import ConfigError
from reid_core.errors import UnknownNameError
from reid_core.models import MODELS
from reid_core.models import BNNeck
from reid_core.models import ReidOutput
from reid_core.models import TemporalAttentionPool
from reid_core.models import VideoReidModel
from reid_core.models import build_model
from reid_core.models import build_model_from_config


def _model(arch: str = "ta_bt", **kwargs: object) -> VideoReidModel:
    options: dict[str, object] = {
        "num_classes": 5,
        "backbone": "resnet10",
        "pretrained": False,
        "input_size": (32, 16),
    }
    options.update(kwargs)
    return build_model(arch, **options)  # type: ignore[arg-type]


def test_registry_has_the_three_architectures() -> None:
    assert MODELS.names() == ["ta", "ta_bt", "tp"]


def test_unknown_arch_is_refused() -> None:
    with pytest.raises(UnknownNameError, match="ta_bt"):
        _model("tab")


@pytest.mark.parametrize(
    ("arch", "backbone", "size", "seq_len", "attention"),
    [
        ("ta_bt", "resnet10", (32, 16), 1, "full_map"),
        ("ta_bt", "resnet10", (48, 24), 3, "full_map"),
        ("ta_bt", "resnet10", (64, 32), 4, "pooled"),
        ("ta", "resnet10", (40, 20), 4, "full_map"),
        ("ta", "resnet18", (32, 16), 3, "pooled"),
        ("tp", "resnet10", (64, 32), 1, "full_map"),
        ("tp", "resnet18", (32, 16), 4, "pooled"),
    ],
)
def test_output_shapes(
    arch: str, backbone: str, size: tuple[int, int], seq_len: int, attention: str
) -> None:
    model = _model(arch, backbone=backbone, input_size=size, attention=attention)
    out = model(torch.randn(2, seq_len, 3, *size))
    assert isinstance(out, ReidOutput)
    assert out.logits.shape == (2, 5)
    assert out.features.shape == out.bn_features.shape == (2, 512)


def test_logits_are_computed_in_eval_mode_too() -> None:
    model = _model().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 3, 32, 16))
    assert out.logits.shape == (2, 5)
    assert torch.equal(model.embedding(out), out.bn_features)


def test_full_map_attention_rejects_another_input_size() -> None:
    model = _model(input_size=(32, 16))
    with pytest.raises(ConfigError, match=r"\(48, 24\).*\(32, 16\)"):
        model(torch.randn(2, 2, 3, 48, 24))


def test_full_map_kernel_covers_the_whole_feature_map() -> None:
    model = _model(input_size=(64, 32))
    assert model.temporal.score.kernel_size == (4, 2)


def test_pooled_attention_accepts_any_input_size() -> None:
    model = _model(attention="pooled", input_size=(32, 16))
    assert model(torch.randn(2, 2, 3, 64, 32)).features.shape == (2, 512)


def test_unknown_attention_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="attention='global'"):
        _model(attention="global")


@pytest.mark.parametrize("seq_len", [1, 4])
def test_attention_weights_are_a_distribution_over_time(seq_len: int) -> None:
    head = TemporalAttentionPool(8, mode="full_map", feature_size=(2, 1), mid_channels=4)
    weights = head.attention(torch.randn(3 * seq_len, 8, 2, 1), 3, seq_len)
    assert weights.shape == (3, seq_len)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3))


def test_attention_pool_is_the_weighted_sum_of_frame_features() -> None:
    head = TemporalAttentionPool(8, mode="pooled", mid_channels=4)
    maps = torch.randn(2 * 3, 8, 2, 2)
    weights = head.attention(maps, 2, 3)
    frames = maps.mean(dim=(2, 3)).view(2, 3, 8)
    expected = torch.einsum("bt,btc->bc", weights, frames)
    features, scores = head(maps, 2, 3)
    assert torch.allclose(features, expected, atol=1e-6)
    assert torch.allclose(torch.softmax(scores, dim=1), weights)


@pytest.mark.parametrize("arch", ["ta", "ta_bt"])
def test_attention_models_return_the_raw_scores_before_the_softmax(arch: str) -> None:
    # ResNet50TA_BT2's a_vals: ReLU(Conv1d(...)) per frame, shape (batch, T), before softmax.
    model = _model(arch, attention="pooled")
    clips = torch.randn(2, 3, 3, 32, 16)
    out = model(clips)
    maps = model.backbone(clips.view(6, 3, 32, 16))
    vectors = torch.relu(model.temporal.score(maps.mean(dim=(2, 3)))).view(2, 3, -1)
    expected = torch.relu(model.temporal.temporal(vectors.transpose(1, 2))).view(2, 3)
    assert out.attention_scores is not None and out.attention_scores.shape == (2, 3)
    assert torch.allclose(out.attention_scores, expected, atol=1e-5)
    assert out.attention_scores.requires_grad


def test_tp_has_no_attention_scores() -> None:
    assert _model("tp")(torch.randn(2, 2, 3, 32, 16)).attention_scores is None


def test_tp_is_the_temporal_mean_of_frame_features() -> None:
    model = _model("tp").eval()
    clips = torch.randn(2, 3, 3, 32, 16)
    with torch.no_grad():
        frames = model.backbone(clips.view(6, 3, 32, 16)).mean(dim=(2, 3)).view(2, 3, -1)
        out = model(clips)
    assert torch.allclose(out.features, frames.mean(dim=1), atol=1e-5)


@pytest.mark.parametrize("arch", ["tp", "ta"])
def test_models_without_neck_use_features_and_a_biased_classifier(arch: str) -> None:
    model = _model(arch)
    out = model(torch.randn(2, 2, 3, 32, 16))
    assert out.bn_features is out.features
    assert model.classifier.bias is not None
    assert model.classifier.weight.shape == (5, 512)


def test_ta_bt_classifier_has_no_bias_and_exposes_prototypes() -> None:
    model = _model(num_classes=7)
    assert model.classifier.bias is None
    assert model.classifier.weight.shape == (7, model.feat_dim)


def test_classifier_init_is_normal_with_std_0_001() -> None:
    model = _model(num_classes=100)
    assert model.classifier.weight.std().item() == pytest.approx(0.001, rel=0.05)


def test_bnneck_bias_is_frozen_at_zero_through_a_training_step() -> None:
    model = _model()
    neck = model.neck
    assert isinstance(neck, BNNeck)
    assert not neck.bias.requires_grad
    assert torch.count_nonzero(neck.bias) == 0
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(torch.randn(4, 2, 3, 32, 16))
    out.logits.sum().backward()
    optimizer.step()
    assert torch.count_nonzero(neck.bias) == 0
    assert neck.weight.grad is not None


def test_bnneck_uses_batch_stats_in_train_and_running_stats_in_eval() -> None:
    model = _model()
    clips = torch.randn(4, 2, 3, 32, 16)
    train_out = model.train()(clips)
    assert torch.allclose(train_out.bn_features.mean(dim=0), torch.zeros(512), atol=1e-4)
    fresh = _model().eval()  # running stats still (0, 1): the neck is almost the identity
    with torch.no_grad():
        eval_out = fresh(clips)
    assert torch.allclose(eval_out.bn_features, eval_out.features / (1 + 1e-5) ** 0.5)


def test_non_five_dimensional_input_is_refused() -> None:
    with pytest.raises(ValueError, match="B, T, C, H, W"):
        _model()(torch.randn(2, 3, 32, 16))


def test_build_model_from_config_follows_the_config() -> None:
    cfg = ModelConfig(arch="ta", backbone="resnet10", attention="pooled", pretrained=False)
    model = build_model_from_config(cfg, num_classes=3, input_size=(32, 16))
    assert model.input_size is None
    assert model.classifier.bias is not None
    assert model.classifier.out_features == 3


def test_faithful_resnet50_ta_bt_parameter_count() -> None:
    model = build_model("ta_bt", num_classes=625, pretrained=False)
    backbone = 23_508_032  # torchvision resnet50 without fc
    attention = 2048 * 256 * 14 * 7 + 256 + 256 * 3 + 1  # full-map Conv2d + temporal Conv1d
    neck_and_classifier = 2 * 2048 + 2048 * 625
    expected = backbone + attention + neck_and_classifier
    assert sum(p.numel() for p in model.parameters()) == expected == 76_173_377
