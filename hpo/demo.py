"""The whole loop on a synthetic dataset: data -> study -> trials with pruning -> test -> report.

This is what ``make demo`` runs. It uses only the public pieces a user would use by hand
(``reid-hpo data synth``, ``study create``, ``worker``, ``study test``, ``study report``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

from hpo.report import build_report
from hpo.spec import StudySpec
from hpo.spec import load_spec
from hpo.storage import normalise_url
from hpo.study import ComputeAccount
from hpo.study import compute_account
from hpo.study import create_study
from hpo.study import evaluate_best_on_test
from hpo.study import state_counts
from hpo.worker import WorkerResult
from hpo.worker import run_worker
from reid_core.data import write_synthetic

logger = logging.getLogger(__name__)

#: The synthetic dataset of the demo: enough ids for a 25% validation split and a test set.
DEMO_DATA = {"ids": 64, "cameras": 4, "tracklets": 4, "frames": 12, "height": 64, "width": 32}


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put everything, and what it measured."""

    study_name: str
    storage_url: str
    data_root: Path
    artifacts_dir: Path
    report: Path
    worker: WorkerResult
    best_trial: int
    best_value: float
    test_metrics: dict[str, float]
    states: dict[str, int]
    wall_s: float
    compute: ComputeAccount


def default_spec_path() -> Path:
    """``studies/demo.yaml`` of the working directory, else of the source checkout."""
    local = Path("studies/demo.yaml")
    if local.is_file():
        return local
    return Path(__file__).resolve().parents[1] / "studies" / "demo.yaml"


def free_study_name(base: str, storage_url: str) -> str:
    """``base``, or ``base-2``, ``base-3``, ... : the demo never reuses an existing study."""
    taken = set(optuna.get_all_study_names(storage=storage_url))
    return next(
        n for n in (base, *(f"{base}-{i}" for i in range(2, len(taken) + 3))) if n not in taken
    )


def _demo_spec(spec: StudySpec, *, out: Path, data_root: Path, name: str) -> StudySpec:
    # Absolute roots: `study test` and `study report` then work from any working directory.
    dataset = spec.dataset.model_copy(update={"root": str(data_root.resolve())})
    artifacts = spec.artifacts.model_copy(update={"root": str((out / "runs").resolve())})
    return spec.model_copy(update={"name": name, "dataset": dataset, "artifacts": artifacts})


def run_demo(
    out: Path,
    *,
    storage_url: str | None = None,
    spec_path: Path | None = None,
    n_trials: int | None = None,
    device: str = "cpu",
) -> DemoResult:
    """Synthesize data, run a small study with pruning, evaluate the best trial, write the report.

    Args:
        out: Output folder (dataset, trial checkpoints, SQLite file, report).
        storage_url: Study storage; ``sqlite:///<out>/reid_hpo.db`` when None.
        spec_path: The study spec; :func:`default_spec_path` when None.
        n_trials: Override the spec's trial budget.
        device: Torch device for the trials and the test evaluation.

    Returns:
        The locations and numbers of the run.
    """
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "data" / "mars"
    if not data_root.exists():
        logger.info("writing the synthetic MARS-layout dataset to %s", data_root)
        write_synthetic(data_root, "mars", seed=0, **DEMO_DATA)
    # A plain postgresql:// URL is mapped to the driver reid-hpo ships before any use.
    url = normalise_url(storage_url or f"sqlite:///{(out / 'reid_hpo.db').resolve()}")

    base = load_spec(spec_path or default_spec_path())
    name = free_study_name(f"{base.name}-{dt.datetime.now():%Y%m%d-%H%M%S}", url)
    spec = _demo_spec(base, out=out, data_root=data_root, name=name)
    if n_trials is not None:
        spec = spec.model_copy(
            update={"budget": spec.budget.model_copy(update={"n_trials": n_trials})}
        )
    study = create_study(spec, url)
    worker = run_worker(name, url, device=device)
    test = evaluate_best_on_test(study, spec, device=device)
    report = build_report(study, out / "report.html", storage_url=url)
    best = study.best_trial
    return DemoResult(
        study_name=name,
        storage_url=url,
        data_root=data_root,
        artifacts_dir=Path(spec.artifacts.root),
        report=report,
        worker=worker,
        best_trial=best.number,
        best_value=float(best.value),
        test_metrics={k: float(v) for k, v in test["metrics"].items()},
        states=state_counts(study.get_trials(deepcopy=False)),
        wall_s=time.monotonic() - started,
        compute=compute_account(study.get_trials(deepcopy=False), spec.training.epochs),
    )
