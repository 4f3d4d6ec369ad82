"""The order of the doctor's checks and which devices they run on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.doctor._device import Size
from hpo.doctor._device import device_checks
from hpo.doctor._host import check_artifacts
from hpo.doctor._host import check_compiler
from hpo.doctor._host import check_driver
from hpo.doctor._host import check_slots
from hpo.doctor._host import check_storage
from hpo.doctor._host import check_versions
from hpo.doctor._host import check_weights
from hpo.doctor._report import Check
from hpo.doctor._report import Status
from hpo.doctor._report import guarded

if TYPE_CHECKING:
    from hpo.spec import StudySpec

__all__ = ["run_doctor"]


def run_doctor(
    *,
    gpus: str = "all",
    size: Size,
    spec: StudySpec | None = None,
    storage_url: str | None = None,
    artifacts_root: Path | None = None,
) -> Iterator[Check]:
    """Run every check, yielding each result as it is known.

    Args:
        gpus: ``all`` (every visible GPU; the CPU when none is), ``none`` (the CPU) or
            positions in the visible list (``0,1``), as ``worker --gpus``.
        size: :data:`~hpo.doctor.FULL` or :data:`~hpo.doctor.QUICK`.
        spec: A study spec: its model, precision, backbone weights and artifacts root.
        storage_url: The study storage (None: the storage check SKIPs).
        artifacts_root: Overrides the spec's ``artifacts.root``.

    Raises:
        ReidHpoError: A malformed ``gpus`` or a position no visible GPU has (before any check).
    """
    import torch

    from hpo.worker._gpu_ids import driver_gpus
    from hpo.worker._gpus import claim_gpus
    from hpo.worker._gpus import parse_gpus
    from hpo.worker._gpus import visible_gpus
    from reid_core.engine import select_device

    visible = visible_gpus()
    all_gpus = gpus.strip().lower() == "all"
    slots = [] if (all_gpus and not visible) else parse_gpus(gpus, visible=visible)
    entries = [s for s in slots if s is not None]
    positions = [visible.index(e) for e in entries]
    listed = driver_gpus()
    yield check_versions()
    yield guarded("driver", lambda: check_driver(listed, len(visible)))
    slot_check = guarded("slots", lambda: check_slots(entries, listed))
    yield slot_check
    yield check_compiler()
    if spec is not None and not spec.model.pretrained:
        yield Check(Status.SKIP, "weights", "the spec has pretrained: false")
    else:
        backbone = spec.model.backbone if spec is not None else "resnet50"
        yield guarded("weights", lambda: check_weights(backbone))
    yield guarded("storage", lambda: check_storage(storage_url))
    root = artifacts_root or (Path(spec.artifacts.root) if spec is not None else None)
    yield guarded("artifacts", lambda: check_artifacts(root, spec, storage_url))
    amp = spec.training.amp if spec is not None else "auto"
    if not entries:
        yield from device_checks(select_device("cpu"), size, spec, amp)
        return
    if slot_check.status is Status.FAIL:
        yield Check(Status.SKIP, "devices", "the GPU slots are not mapped (see slots)")
        return
    try:
        with claim_gpus(entries):  # no worker starts on these GPUs while they are checked
            for position in positions:
                yield from device_checks(select_device(f"cuda:{position}"), size, spec, amp)
                torch.cuda.empty_cache()
    except Exception as exc:
        yield Check(Status.FAIL, "devices", str(exc))
