"""What a study's search cost and what pruning saved, from the trials' own records.

Each attempt of a trial records the epochs it trained, its device-seconds (wall-clock seconds x
devices: GPU-seconds on a GPU) and the device (:class:`~hpo.study.records.TrialAttr`). A study's
account sums them over every attempt (failed and handed-back ones included: they spent the
compute too), counts the epochs its PRUNED trials did not train against the budget of running
every finished trial to the end, and prices the reference's search (60 full trials one after
another, no pruning) at the study's own pace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.study.records import TrialAttr
from hpo.study.records import rung_of

REFERENCE_TRIALS = 60
"""Trials of the reference's search: each a full training, no pruning (REFERENCE.md)."""


@dataclass(frozen=True)
class TrialCompute:
    """What one attempt of a trial spent."""

    epochs_trained: int
    device_seconds: float
    device: str | None

    @property
    def unit(self) -> str:
        """``"GPU"`` on a CUDA device, else ``"device"``."""
        return _unit([self.device] if self.device else [])

    def describe(self) -> str:
        """``6 epochs, 41 GPU-seconds on cuda:0 (NVIDIA H100)``."""
        where = f" on {self.device}" if self.device else ""
        return f"{self.epochs_trained} epochs, {_seconds(self.device_seconds, self.unit)}{where}"


def trial_compute(trial: FrozenTrial) -> TrialCompute | None:
    """The compute record of one trial attempt, or ``None`` when it has none (a trial of an
    earlier reid-hpo version, or one that never started training)."""
    attrs = trial.user_attrs
    epochs = attrs.get(TrialAttr.EPOCHS_TRAINED)
    seconds = attrs.get(TrialAttr.DEVICE_SECONDS)
    if not isinstance(epochs, int) or not isinstance(seconds, int | float):
        return None
    device = attrs.get(TrialAttr.DEVICE)
    return TrialCompute(epochs, float(seconds), str(device) if device else None)


@dataclass(frozen=True)
class ComputeAccount:
    """A study's compute, summed over its trials' records."""

    epochs_trained: int
    """Epochs trained by every attempt (failed and handed-back ones included)."""
    device_seconds: float
    """Their wall-clock seconds x devices (GPU-seconds when every device is a GPU)."""
    unit: str
    """``"GPU"`` or ``"device"``."""
    devices: list[str]
    """The distinct devices that trained, as the trials recorded them."""
    attempts: int
    """Attempts with a compute record."""
    untracked: int
    """Trials without one (earlier reid-hpo versions, trials that never trained)."""
    epochs_per_trial: int | None
    finished_trials: int
    """COMPLETE and PRUNED trials."""
    pruned_trials: int
    epochs_saved: int
    """Epochs the PRUNED trials did not train, up to ``epochs_per_trial``."""
    unpruned_epochs: int | None
    """Epochs the finished trials would have trained without pruning."""
    seconds_per_epoch: float | None
    """Device-seconds per trained epoch (evaluation and start-up included)."""
    reference_trials: int = REFERENCE_TRIALS
    reference_hours: float | None = None
    """Device-hours of ``reference_trials`` full trials of this schedule at this pace."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The account in a few short sentences (what ``study status`` and the report show)."""
        where = f" on {', '.join(self.devices)}" if self.devices else ""
        out = [
            f"compute: {self.epochs_trained} epochs, "
            f"{_seconds(self.device_seconds, self.unit)}{where}"
            if self.attempts
            else "compute: no trial has a compute record yet"
        ]
        if self.unpruned_epochs:
            share = self.epochs_saved / self.unpruned_epochs
            out.append(
                f"pruning saved {self.epochs_saved} of {self.unpruned_epochs} epochs "
                f"({share:.0%}; {self.pruned_trials} of {self.finished_trials} finished "
                "trials pruned)"
            )
        if self.reference_hours is not None:
            out.append(
                f"the reference's search ({self.reference_trials} full {self.epochs_per_trial}"
                f"-epoch trials, no pruning) at this pace: {self.reference_hours:.2f} "
                f"{self.unit}-hours"
            )
        if self.untracked and self.attempts:
            out.append(f"{self.untracked} trials have no compute record")
        return out


def compute_account(trials: Iterable[FrozenTrial], epochs_per_trial: int | None) -> ComputeAccount:
    """Sum the trials' compute records and what pruning saved.

    Args:
        trials: Every trial of the study (any state).
        epochs_per_trial: The spec's training epochs (None: savings are not counted); a rung
            trial of a ``fidelity:`` study counts with its rung's epochs.

    Returns:
        The account.
    """
    trials = list(trials)
    records = [(t, trial_compute(t)) for t in trials]
    tracked = [c for _, c in records if c is not None]
    epochs = sum(c.epochs_trained for c in tracked)
    seconds = sum(c.device_seconds for c in tracked)
    devices = sorted({c.device for c in tracked if c.device})
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    saved = 0
    if epochs_per_trial:
        saved = sum(max(_scheduled(t, epochs_per_trial) - _epochs_done(t), 0) for t in pruned)
    per_epoch = seconds / epochs if epochs else None
    reference = (
        REFERENCE_TRIALS * epochs_per_trial * per_epoch / 3600
        if per_epoch is not None and epochs_per_trial
        else None
    )
    return ComputeAccount(
        epochs_trained=epochs,
        device_seconds=round(seconds, 1),
        unit=_unit(devices),
        devices=devices,
        attempts=len(tracked),
        untracked=sum(1 for t, c in records if c is None and t.state != TrialState.WAITING),
        epochs_per_trial=epochs_per_trial,
        finished_trials=len(finished),
        pruned_trials=len(pruned),
        epochs_saved=saved,
        unpruned_epochs=(
            sum(_scheduled(t, epochs_per_trial) for t in finished) if epochs_per_trial else None
        ),
        seconds_per_epoch=None if per_epoch is None else round(per_epoch, 2),
        reference_hours=None if reference is None else round(reference, 3),
    )


def _scheduled(trial: FrozenTrial, epochs_per_trial: int) -> int:
    """The epochs the trial was to train: its rung's in a ``fidelity:`` study."""
    rung = rung_of(trial)
    return rung.epochs if rung is not None else epochs_per_trial


def _epochs_done(trial: FrozenTrial) -> int:
    done = trial.user_attrs.get(TrialAttr.EPOCHS_DONE)
    if isinstance(done, int):
        return done
    return max(trial.intermediate_values) + 1 if trial.intermediate_values else 0


def _unit(devices: list[str]) -> str:
    return "GPU" if devices and all(d.startswith("cuda") for d in devices) else "device"


def _seconds(seconds: float, unit: str) -> str:
    text = f"{seconds:.0f} {unit}-seconds"
    return text if seconds < 360 else f"{text} ({seconds / 3600:.2f} {unit}-hours)"


__all__ = ["REFERENCE_TRIALS", "ComputeAccount", "TrialCompute", "compute_account", "trial_compute"]
