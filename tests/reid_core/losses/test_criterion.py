"""ReidCriterion: the weighted sum, skipped terms, prototypes, center gradient rescaling."""

from __future__ import annotations

import pytest
import torch

from reid_core.config import LossConfig
from reid_core.errors import ConfigError
from reid_core.losses import LOSS_TERMS
from reid_core.losses import OSMCAALoss
from reid_core.losses import ReidCriterion
from reid_core.losses import rescale_center_grads
from reid_core.models import ReidOutput

NUM_CLASSES, DIM = 4, 8


def _batch(seed: int = 0) -> tuple[ReidOutput, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(8, DIM, generator=gen, requires_grad=True)
    classifier = torch.randn(NUM_CLASSES, DIM, generator=gen, requires_grad=True)
    output = ReidOutput(features @ classifier.t(), features, features)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return output, labels, classifier


def _criterion(**overrides: object) -> ReidCriterion:
    cfg = LossConfig(**overrides)  # type: ignore[arg-type]
    return ReidCriterion(cfg, num_classes=NUM_CLASSES, feat_dim=DIM)


def test_total_is_the_weighted_sum_of_the_terms() -> None:
    criterion = _criterion(beta=0.3, center_weight=0.01, prototypes="classifier")
    output, labels, classifier = _batch()
    terms = criterion(output, labels, classifier)
    assert tuple(terms) == LOSS_TERMS
    expected = terms["ce"] + 0.7 * terms["triplet"] + 0.01 * terms["center"] + 0.3 * terms["osm"]
    assert torch.allclose(terms["total"], expected)
    assert all(terms[k].item() > 0 for k in ("ce", "triplet", "center", "osm"))


def test_terms_use_bn_features_and_the_configured_osm() -> None:
    criterion = _criterion(
        beta=0.5, osm_alpha=2.0, osm_l=0.3, osm_sigma=0.5, prototypes="classifier"
    )
    output, labels, classifier = _batch()
    output = output._replace(features=torch.zeros_like(output.features))
    terms = criterion(output, labels, classifier)
    expected_osm = OSMCAALoss(alpha=2.0, l=0.3, sigma=0.5)(output.bn_features, labels, classifier)
    assert torch.allclose(terms["osm"], expected_osm)


def test_osm_is_not_computed_when_beta_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    criterion = _criterion(beta=0.0)

    def fail(*args: object) -> torch.Tensor:
        raise AssertionError("OSM computed with beta == 0")

    monkeypatch.setattr(criterion.osm, "forward", fail)
    output, labels, _ = _batch()
    terms = criterion(output, labels)
    assert terms["osm"].item() == 0.0


def test_center_prototypes_get_no_osm_gradient() -> None:
    output, labels, _ = _batch()
    with_osm = _criterion(beta=1.0, prototypes="centers", center_weight=1.0)
    without_osm = _criterion(beta=0.0, center_weight=1.0)
    without_osm.load_state_dict(with_osm.state_dict())
    with_osm(output, labels)["total"].backward()
    output, labels, _ = _batch()
    without_osm(output, labels)["total"].backward()
    assert torch.allclose(with_osm.center.centers.grad, without_osm.center.centers.grad)


def test_classifier_prototypes_receive_the_osm_gradient() -> None:
    criterion = _criterion(beta=1.0, prototypes="classifier")
    output, labels, classifier = _batch()
    proto = classifier.detach().clone().requires_grad_()
    criterion(output, labels, proto)["osm"].backward()
    assert proto.grad is not None
    assert proto.grad.abs().sum() > 0


def test_classifier_prototypes_need_the_classifier_weight() -> None:
    output, labels, _ = _batch()
    with pytest.raises(ConfigError, match="classifier weight"):
        _criterion(beta=0.5, prototypes="classifier")(output, labels)


def test_labels_beyond_num_classes_are_refused() -> None:
    output, _, _ = _batch()
    with pytest.raises(ConfigError, match="num_classes=4"):
        _criterion()(output, torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]))


def test_center_parameters_are_the_only_parameters() -> None:
    criterion = _criterion()
    centers = list(criterion.center_parameters())
    assert len(centers) == 1
    assert centers[0].shape == (NUM_CLASSES, DIM)
    assert [p.data_ptr() for p in criterion.parameters()] == [centers[0].data_ptr()]


def test_rescale_center_grads_divides_by_the_weight() -> None:
    criterion = _criterion(center_weight=5e-4)
    output, labels, _ = _batch()
    criterion(output, labels)["total"].backward()
    before = criterion.center.centers.grad.clone()
    rescale_center_grads(criterion, 5e-4)
    assert torch.allclose(criterion.center.centers.grad, before / 5e-4)


def test_beta_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"beta=1\.5"):
        _criterion(beta=1.5)
