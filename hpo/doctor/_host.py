"""The doctor's checks of the node as a whole: versions, driver, GPU slots, compiler,
ImageNet weights, storage and artifacts root."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torchvision

from hpo.doctor._report import Check
from hpo.doctor._report import Status
from hpo.errors import ReidHpoError
from hpo.worker._gpu_ids import DriverGpu
from hpo.worker._gpu_ids import physical_ids

if TYPE_CHECKING:
    from hpo.spec import StudySpec

__all__ = [
    "check_artifacts",
    "check_compiler",
    "check_driver",
    "check_slots",
    "check_storage",
    "check_versions",
    "check_weights",
    "driver_version",
]

_SMI_TIMEOUT_S = 20.0


def check_versions() -> Check:
    """torch, torchvision, the CUDA build and cuDNN, Python: always PASS, for the record."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return Check(
        Status.PASS,
        "versions",
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"CUDA build {torch.version.cuda or 'none (CPU build)'}, cuDNN {cudnn or 'none'}, "
        f"Python {platform.python_version()}",
    )


def driver_version() -> str | None:
    """The NVIDIA driver version ``nvidia-smi`` reports, None without a working one."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=_SMI_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    return lines[0] if lines else None


def check_driver(listed: Sequence[DriverGpu] | None, cuda_count: int) -> Check:
    """The driver and torch agree: GPUs the driver lists are usable by this torch build.

    Args:
        listed: The driver's GPUs (:func:`hpo.worker._gpu_ids.driver_gpus`), None without
            ``nvidia-smi``.
        cuda_count: CUDA devices torch sees.
    """
    version = driver_version() if listed else None
    build = torch.version.cuda or "none"
    if cuda_count:
        names = ", ".join(sorted({torch.cuda.get_device_name(i) for i in range(cuda_count)}))
        return Check(
            Status.PASS,
            "driver",
            f"driver {version or 'unknown (no nvidia-smi)'}, torch CUDA build {build}, "
            f"{cuda_count} CUDA device(s): {names}",
        )
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return Check(Status.SKIP, "driver", "CUDA_VISIBLE_DEVICES is empty: GPUs hidden here")
    if not listed:
        return Check(Status.SKIP, "driver", "no NVIDIA GPU (nvidia-smi lists none): CPU node")
    return Check(
        Status.FAIL,
        "driver",
        f"the driver ({version or 'version unknown'}) lists {len(listed)} GPU(s) but torch "
        f"(CUDA build {build}) sees no CUDA device: the cu130 image needs driver 580 or "
        "newer, cu126 525 or newer (README, 'GPU nodes')",
    )


def check_slots(entries: Sequence[str], listed: Sequence[DriverGpu] | None) -> Check:
    """Each selected slot's ``CUDA_VISIBLE_DEVICES`` entry mapped to a physical GPU: FAIL
    when one has no known identity (its lock would go by name only) or two are one GPU."""
    if not entries:
        return Check(Status.SKIP, "slots", "no CUDA device visible")
    gpus = list(listed or [])
    ids = physical_ids(entries, gpus=gpus)
    by_uuid = {g.uuid: g for g in gpus}
    parts = []
    for slot, (entry, identity) in enumerate(zip(entries, ids, strict=True)):
        gpu = by_uuid.get(identity)
        where = f" ({gpu.pci_bus_id}, {gpu.name})" if gpu else ""
        parts.append(f"slot {slot} = {entry} -> {identity}{where}")
    unknown = [e for e, i in zip(entries, ids, strict=True) if not i.startswith(("GPU-", "MIG-"))]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if unknown or twice:
        reason = (
            f"GPU {', '.join(unknown)} has no known UUID (nvidia-smi missing, or mixed models "
            "without CUDA_DEVICE_ORDER=PCI_BUS_ID): locks go by name only"
            if unknown
            else f"{', '.join(twice)} is named by more than one slot"
        )
        return Check(Status.FAIL, "slots", f"{reason}; {'; '.join(parts)}")
    return Check(Status.PASS, "slots", "; ".join(parts))


def check_compiler() -> Check:
    """A C compiler for ``compile: true`` (Triton and Inductor build helpers at first use)."""
    from reid_core.engine import c_compiler

    found = c_compiler()
    if found is None:
        return Check(
            Status.FAIL, "compiler", "no C compiler ($CC, cc, gcc, clang): compile: true is refused"
        )
    return Check(Status.PASS, "compiler", f"{found} (compile: true can build its helpers)")


def check_weights(backbone: str) -> Check:
    """The ImageNet weights file of ``backbone`` is in the torch hub cache, checksum right."""
    from hpo.weights import verify_weights
    from hpo.weights import weights_file_name

    _, name = weights_file_name(backbone)
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not path.is_file():
        return Check(
            Status.FAIL,
            "weights",
            f"{path} not found: run `reid-hpo weights fetch` (or copy the file there)",
        )
    try:
        digest = verify_weights(path)
    except ReidHpoError as exc:
        return Check(Status.FAIL, "weights", f"{exc}; run `reid-hpo weights fetch`")
    return Check(Status.PASS, "weights", f"{path} (sha256 {digest[:16]}...)")


def check_storage(url: str | None) -> Check:
    """The study storage opens (an SQLite file must exist: the doctor creates nothing)."""
    from hpo.storage import close_storage
    from hpo.storage import mask_url
    from hpo.storage import open_storage

    if url is None:
        return Check(Status.SKIP, "storage", "no --storage and no $REID_HPO_STORAGE")
    try:
        storage = open_storage(url, must_exist=True)
    except Exception as exc:
        return Check(Status.FAIL, "storage", str(exc))
    try:
        studies = len(storage.get_all_studies())
    finally:
        close_storage(storage)
    return Check(Status.PASS, "storage", f"{mask_url(url)} reachable ({studies} studies)")


def check_artifacts(root: Path | None, spec: StudySpec | None, url: str | None) -> Check:
    """The artifacts root is writable here (its nearest existing folder when it does not
    exist yet) and, when the spec's study is in the storage, its marker is visible."""
    if root is None:
        return Check(Status.SKIP, "artifacts", "no --spec and no --artifacts-root")
    from hpo.study._preflight import artifacts_write_error

    reason = artifacts_write_error(root)
    if reason is not None:
        return Check(Status.FAIL, "artifacts", f"{root} is not writable: {reason}")
    marker = _marker_note(root, spec, url)
    if marker.startswith("FAIL "):
        return Check(Status.FAIL, "artifacts", marker[5:])
    return Check(Status.PASS, "artifacts", f"{root} writable; {marker}")


def _marker_note(root: Path, spec: StudySpec | None, url: str | None) -> str:
    """What is known of the study's marker; ``FAIL <reason>`` when it is not visible."""
    from hpo.storage import close_storage
    from hpo.storage import open_storage
    from hpo.storage import storage_identity
    from hpo.study._marker import check_marker
    from hpo.study.records import StudyAttr

    if spec is None or url is None:
        return "study marker not checked (needs --spec and a storage)"
    try:
        storage = open_storage(url, must_exist=True)
    except Exception:
        return "study marker not checked (storage unreachable)"
    try:
        study_id = storage.get_study_id_from_name(spec.name)
        attrs = storage.get_study_user_attrs(study_id)
    except KeyError:
        return f"study marker not checked (no study {spec.name!r} in the storage yet)"
    finally:
        close_storage(storage)
    study_uuid = attrs.get(StudyAttr.UUID)
    if not attrs.get(StudyAttr.ARTIFACTS_MARKER) or not isinstance(study_uuid, str):
        return f"study {spec.name!r} has no artifacts marker"
    try:
        artifacts = spec.artifacts.model_copy(update={"root": str(root)})  # this node's root
        check_marker(artifacts, study_uuid, spec.name, storage_identity(url))
    except Exception as exc:
        return f"FAIL {exc}"
    return f"marker of study {spec.name!r} visible"
