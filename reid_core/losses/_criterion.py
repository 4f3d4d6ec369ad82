"""The weighted sum of the bag-of-tricks losses, as one module the trainer calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch import nn

from reid_core.config import LossConfig
from reid_core.errors import ConfigError
from reid_core.losses._attention import attention_loss
from reid_core.losses._center import CenterLoss
from reid_core.losses._cross_entropy import CrossEntropyLabelSmooth
from reid_core.losses._osm_caa import OSMCAALoss
from reid_core.losses._triplet import TripletLoss

if TYPE_CHECKING:
    from reid_core.models import ReidOutput

__all__ = ["LOSS_TERMS", "ReidCriterion", "rescale_center_grads"]

LOSS_TERMS: tuple[str, ...] = ("ce", "triplet", "center", "osm", "attention", "total")


class ReidCriterion(nn.Module):
    """``total = ce + triplet_weight * (1 - beta) * triplet + center_weight * center + beta * osm
    + attention_weight * attention``.

    ``ce`` is the label-smoothed cross-entropy on the logits; the metric losses (triplet,
    center, OSM+CAA) use ``output.bn_features`` as the reference does. The OSM prototypes are
    the classifier weight (``cfg.prototypes == "classifier"``) or the center-loss centers
    (``"centers"``, the paper's "CL centers"). Centers enter OSM detached: they are learnt by
    the center loss alone, whose gradient :func:`rescale_center_grads` multiplies by
    ``1 / center_weight``, an amplification an OSM gradient must not get. Terms with a zero
    weight (``osm`` when ``beta == 0``, ``triplet`` when ``beta == 1``) are not computed and
    reported as 0; so are ``triplet`` when ``triplet_weight == 0`` and ``attention`` (the
    Attn-CL term, :func:`~reid_core.losses.attention_loss`: the raw attention scores of the
    erased frames) when ``attention_weight == 0``.

    The only parameters are the centers (:meth:`center_parameters`); give them their own SGD
    at ``cfg.center_lr`` and call :func:`rescale_center_grads` before its step.

    Args:
        cfg: Loss weights and parameters.
        num_classes: Number of training identities.
        feat_dim: Dimension of ``bn_features``.

    Raises:
        ConfigError: a weight or parameter outside its range.
    """

    def __init__(self, cfg: LossConfig, *, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        if not 0.0 <= cfg.beta <= 1.0:
            raise ConfigError(f"loss beta={cfg.beta} must be in [0, 1]")
        if cfg.center_weight < 0:
            raise ConfigError(f"center_weight={cfg.center_weight} must be >= 0")
        if cfg.triplet_weight < 0:
            raise ConfigError(f"triplet_weight={cfg.triplet_weight} must be >= 0")
        if cfg.prototypes == "centers" and cfg.beta > 0 and cfg.center_weight == 0:
            raise ConfigError(
                "prototypes='centers' (CL centers) needs the center loss that learns them "
                "(center_weight > 0), or use prototypes='classifier'"
            )
        if cfg.prototypes not in ("classifier", "centers"):
            raise ConfigError(f"prototypes={cfg.prototypes!r} must be 'classifier' or 'centers'")
        if cfg.attention_weight < 0:
            raise ConfigError(f"attention_weight={cfg.attention_weight} must be >= 0")
        self.num_classes = num_classes
        self.beta = cfg.beta
        self.triplet_factor = cfg.triplet_weight * (1.0 - cfg.beta)
        self.center_weight = cfg.center_weight
        self.attention_weight = cfg.attention_weight
        self.prototypes = cfg.prototypes
        self.cross_entropy = CrossEntropyLabelSmooth(num_classes, epsilon=cfg.label_smoothing)
        self.triplet = TripletLoss(cfg.triplet_margin, distance=cfg.triplet_distance)
        self.center = CenterLoss(num_classes, feat_dim)
        self.osm = OSMCAALoss(alpha=cfg.osm_alpha, l=cfg.osm_l, sigma=cfg.osm_sigma)

    def center_parameters(self) -> Iterator[nn.Parameter]:
        """The center-loss centers (keep them out of the model optimiser)."""
        return self.center.parameters()

    def forward(
        self,
        output: ReidOutput,
        labels: Tensor,
        classifier_weight: Tensor | None = None,
        *,
        erased: Tensor | None = None,
        check_labels: bool = True,
    ) -> dict[str, Tensor]:
        """Every loss term and their weighted total.

        Args:
            output: The model output of the batch.
            labels: ``[B]`` training-id indices in ``[0, num_classes)``.
            classifier_weight: ``[num_classes, D]`` classifier weight (``model.classifier.weight``);
                needed only when ``beta > 0`` and the prototypes are the classifier.
            erased: ``[B, T]`` 0/1 labels of the erased frames; needed only when
                ``attention_weight > 0`` (with the output's attention scores).
            check_labels: Check the label range (reads the labels back from the device: a
                trainer that checked them on the host passes False).

        Returns:
            ``{"ce", "triplet", "center", "osm", "attention", "total"}`` scalar tensors.

        Raises:
            ConfigError: a label outside ``[0, num_classes)``, a missing classifier weight,
                or, for the attention loss, missing scores or labels.
        """
        if check_labels:
            self.check_labels(labels)
        feats = output.bn_features
        zero = feats.new_zeros((), dtype=torch.float32)
        terms = {"ce": self.cross_entropy(output.logits, labels)}
        terms["triplet"] = self.triplet(feats, labels) if self.triplet_factor > 0 else zero
        terms["center"] = self.center(feats, labels)
        if self.beta > 0.0:
            terms["osm"] = self.osm(feats, labels, self._prototypes(classifier_weight))
        else:
            terms["osm"] = zero
        if self.attention_weight > 0.0:
            terms["attention"] = self._attention(output, erased)
        else:
            terms["attention"] = zero
        terms["total"] = (
            terms["ce"]
            + self.triplet_factor * terms["triplet"]
            + self.center_weight * terms["center"]
            + self.beta * terms["osm"]
            + self.attention_weight * terms["attention"]
        )
        return terms

    def check_labels(self, labels: Tensor) -> None:
        """Raise :class:`ConfigError` unless every label is in ``[0, num_classes)``."""
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ConfigError(
                f"labels span [{int(labels.min())}, {int(labels.max())}] but the loss was "
                f"built for num_classes={self.num_classes}"
            )

    def _attention(self, output: ReidOutput, erased: Tensor | None) -> Tensor:
        if output.attention_scores is None:
            raise ConfigError(
                "the attention loss needs a model with temporal attention (ta, ta_bt)"
            )
        if erased is None:
            raise ConfigError("the attention loss needs the erased-frame labels of the batch")
        return attention_loss(output.attention_scores, erased)

    def _prototypes(self, classifier_weight: Tensor | None) -> Tensor:
        if self.prototypes == "centers":
            return self.center.centers.detach()
        if classifier_weight is None:
            raise ConfigError("prototypes='classifier' needs the classifier weight")
        return classifier_weight


def rescale_center_grads(criterion: ReidCriterion, center_weight: float) -> None:
    """Multiply the centers' gradients by ``1 / center_weight`` before their SGD step.

    The total loss scales the center loss by ``center_weight``; undoing it lets the centers
    move at ``center_lr`` whatever the weight (bag of tricks). A zero weight leaves the (zero)
    gradients as they are.

    Raises:
        ConfigError: ``center_weight < 0``.
    """
    if center_weight < 0:
        raise ConfigError(f"center_weight={center_weight} must be >= 0")
    if center_weight == 0:
        return
    for param in criterion.center_parameters():
        if param.grad is not None:
            param.grad.mul_(1.0 / center_weight)
