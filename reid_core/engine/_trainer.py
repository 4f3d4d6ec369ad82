"""The training loop: data, model, losses, optimisers, schedule, evaluation, checkpoints."""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_core import data as reid_data
from reid_core.config import TrainConfig
from reid_core.config import config_path
from reid_core.data.records import ReidSplit
from reid_core.data.records import Tracklet
from reid_core.engine._batch import finish_on_device
from reid_core.engine._callbacks import Callback
from reid_core.engine._callbacks import EpochReport
from reid_core.engine._callbacks import FitResult
from reid_core.engine._callbacks import StopTraining
from reid_core.engine._checkpoint import CheckpointManager
from reid_core.engine._checkpoint import code_version
from reid_core.engine._checkpoint import load_checkpoint
from reid_core.engine._device import select_device
from reid_core.engine._evaluation import EvaluationResult
from reid_core.engine._evaluation import evaluate
from reid_core.engine._init_from import init_from_checkpoint
from reid_core.engine._io import write_json_atomic
from reid_core.engine._metrics_log import MetricsLog
from reid_core.engine._progress import epoch_progress
from reid_core.engine._schedule import WarmupMultiStepLR
from reid_core.engine._seed import rng_state
from reid_core.engine._seed import seed_everything
from reid_core.engine._seed import set_rng_state
from reid_core.engine._step import build_step_parts
from reid_core.engine._step import optimisation_step
from reid_core.errors import CheckpointError
from reid_core.errors import ConfigError
from reid_core.errors import NonFiniteLossError

logger = logging.getLogger(__name__)

RESULTS_NAME = "results.json"
#: Steps between read-backs of the summed loss terms (progress text, finiteness check).
LOSS_READ_EVERY = 50
# Config entries that may change between a run and its resumption without changing the run.
_RESUME_FREE_KEYS = frozenset(
    {"epochs", "eval_every", "output_dir", "device", "amp", "channels_last", "compile"}
)


class Trainer:
    """Trains one video re-ID model as a :class:`TrainConfig` describes.

    Builds, in this order: seeding, data (the dataset's train split, from which the validation
    split is carved when ``cfg.data.validation`` is set), model, criterion, Adam plus the
    center-loss SGD, the warm-up multi-step schedule and the AMP scaler. Evaluation during
    training uses the validation split only, never the test set.

    Args:
        cfg: The run's configuration.
        split: Records to train on instead of reading ``cfg.data.dataset``; only ``train`` is
            used (the validation split is carved from it unless ``eval_split`` is given).
        eval_split: Query/gallery records to evaluate on during training; when given, no
            validation split is carved and ``split.train`` is trained on as is.
        evaluate_rerank: Also report re-ranked metrics (``rerank_mAP``, ...) at evaluations.
        monitor: Metric that selects ``FitResult.best_metrics``.
        progress: Show a progress bar; ``None`` shows one only on a terminal.

    Raises:
        ConfigError: If the configuration or the data cannot make a training run.
        DatasetNotFoundError: If the dataset root is missing.

    Example:
        >>> trainer = Trainer(cfg)  # doctest: +SKIP
        >>> result = trainer.fit(callbacks=[MyCallback()])  # doctest: +SKIP
        >>> result.final_metrics["mAP"]  # doctest: +SKIP
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        split: ReidSplit | None = None,
        eval_split: ReidSplit | None = None,
        evaluate_rerank: bool = False,
        monitor: str = "mAP",
        progress: bool | None = None,
        log_epochs: bool = True,
    ) -> None:
        self.cfg = cfg
        #: Log one INFO line per epoch (epoch e/E, elapsed, ETA, lr, loss, metrics); False
        #: moves it to DEBUG for a caller that logs its own epoch line (an HPO worker).
        self.log_epochs = log_epochs
        self.evaluate_rerank = evaluate_rerank
        self.monitor = monitor
        self.progress = progress
        self.output_dir = Path(cfg.output_dir)
        self.device = select_device(cfg.device)

        seed_everything(cfg.seed, deterministic=cfg.deterministic)
        self.train_records, self.eval_split = self._build_data(split, eval_split)
        self.num_classes = len({t.pid for t in self.train_records})
        parts = build_step_parts(cfg, self.num_classes, self.device)
        self.precision = parts.precision
        self.model: nn.Module = parts.model
        self.criterion: nn.Module = parts.criterion
        self.optimizer = parts.optimizer
        self.center_optimizer = parts.center_optimizer
        self.scaler = parts.scaler
        self.scheduler = WarmupMultiStepLR(
            self.optimizer,
            milestones=cfg.optim.milestones,
            gamma=cfg.optim.gamma,
            warmup_factor=cfg.optim.warmup_factor,
            warmup_epochs=cfg.optim.warmup_epochs,
        )
        self._erase_fill = reid_data.erasing_style(cfg.data.erasing_style).fill
        self.checkpoints = CheckpointManager(self.output_dir)
        #: Where the initial backbone/attention weights came from (``cfg.init_from``).
        self.init_source: dict[str, Any] | None = None
        self._loader: Iterable[Any] | None = None
        self._eval_loaders: tuple[Iterable[Any], Iterable[Any]] | None = None
        logger.info(
            "trainer: %d train tracklets, %d ids; evaluation on %s; device %s, %s",
            len(self.train_records),
            self.num_classes,
            "no split"
            if self.eval_split is None
            else f"{len(self.eval_split.query)} query / {len(self.eval_split.gallery)} gallery",
            self.device,
            self.precision.name,
        )

    # ----------------------------------------------------------------------------- data
    def _build_data(
        self, split: ReidSplit | None, eval_split: ReidSplit | None
    ) -> tuple[tuple[Tracklet, ...], ReidSplit | None]:
        data_cfg = self.cfg.data
        if split is None:
            dataset = reid_data.build_dataset(
                data_cfg.dataset,
                data_cfg.root,
                split_id=data_cfg.split_id,
                mars_gallery=data_cfg.mars_gallery,
            )
            train: tuple[Tracklet, ...] = tuple(dataset.train)
        else:
            train = tuple(split.train)
        if eval_split is None and data_cfg.validation is not None:
            eval_split = reid_data.carve_validation(train, data_cfg.validation)
            train = tuple(eval_split.train)
        if eval_split is None:
            logger.warning("no validation split: training runs without evaluation")
        if not train:
            raise ConfigError(f"no training tracklets left in dataset {data_cfg.root}")
        return _relabel(train), eval_split

    def _train_loader(self, epoch: int) -> Iterable[Any]:
        """The train loader positioned at ``epoch``: built once (persistent workers and frame
        caches survive across epochs), its sampler moved to each epoch."""
        sampler = getattr(self._loader, "sampler", None)
        if self._loader is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        else:
            self._loader = reid_data.build_train_loader(
                self.train_records,
                self.cfg.data,
                seed=self.cfg.seed,
                epoch=epoch,
                finish_on_host=False,
                pin_memory=self.device.type == "cuda",
            )
        return self._loader

    # ----------------------------------------------------------------------- evaluation
    def evaluate(self, *, rerank: bool | None = None) -> EvaluationResult:
        """Evaluate the current model on the evaluation (validation) split.

        Args:
            rerank: Override ``evaluate_rerank`` for this call.

        Returns:
            Metrics and CMC curves.

        Raises:
            ConfigError: If the trainer has no evaluation split.
        """
        if self.eval_split is None:
            raise ConfigError("this trainer has no validation split to evaluate on")
        if self._eval_loaders is None:
            pin = self.device.type == "cuda"
            self._eval_loaders = (
                reid_data.build_test_loader(
                    self.eval_split.query, self.cfg.data, pin_memory=pin, finish_on_host=False
                ),
                reid_data.build_test_loader(
                    self.eval_split.gallery, self.cfg.data, pin_memory=pin, finish_on_host=False
                ),
            )
        query_loader, gallery_loader = self._eval_loaders
        return evaluate(
            self.model,
            query_loader,
            gallery_loader,
            device=self.device,
            rerank=self.evaluate_rerank if rerank is None else rerank,
            chunk=self.cfg.data.test_batch_size,
            amp=self.cfg.amp,
        )

    # ------------------------------------------------------------------------- training
    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """Run one epoch of optimisation.

        Loss terms are summed on the device and read back every :data:`LOSS_READ_EVERY`
        steps and at the end of the epoch (the step itself never waits for the device).
        Under the fp16 gradient scaler a step whose loss is not finite is skipped by the
        scaler and left out of the means; only a window in which every step was skipped
        fails.

        Args:
            epoch: 0-based epoch index (seeds the data order of the epoch).

        Returns:
            The mean of each loss term over the epoch's steps.

        Raises:
            NonFiniteLossError: If the loss becomes NaN or infinite.
        """
        self.model.train()
        self.criterion.train()
        loader = self._train_loader(epoch)
        sums: dict[str, torch.Tensor] = {}
        steps = checked = 0
        kept = torch.zeros((), device=self.device)  # steps in the sums, counted on the device
        kept_before = 0.0
        total_steps = len(loader) if hasattr(loader, "__len__") else None
        label = f"epoch {epoch + 1}/{self.cfg.epochs}"
        with epoch_progress(label, total_steps, enabled=self.progress) as advance:
            for step, ((clips, boxes), pids, _camids) in enumerate(loader):
                self.criterion.check_labels(pids)  # on the host: no device read-back
                boxes = boxes.to(self.device, non_blocking=True)
                clips = finish_on_device(clips, boxes, self.device, self._erase_fill)
                losses = self.train_step(
                    clips,
                    pids.to(self.device, non_blocking=True),
                    reid_data.erased_frames(boxes),
                )
                if self.scaler.is_enabled():  # a non-finite step was skipped by the scaler
                    finite = torch.isfinite(losses["total"])
                    losses = {
                        k: torch.where(finite, v, torch.zeros_like(v)) for k, v in losses.items()
                    }
                    kept = kept + finite
                else:
                    kept = kept + 1
                for name, value in losses.items():
                    sums[name] = sums[name] + value if name in sums else value
                steps += 1
                text = ""
                if steps % LOSS_READ_EVERY == 0:
                    means, kept_before = self._checked_mean(
                        sums, kept, kept_before, epoch, (checked, step)
                    )
                    text, checked = f"loss {means['total']:.4f}", steps
                advance(text)
        if steps == 0:
            raise ConfigError(
                f"the train loader yielded no batch at epoch {epoch + 1} "
                f"(batch_size={self.cfg.data.batch_size}, num_instances="
                f"{self.cfg.data.num_instances}, {self.num_classes} ids)"
            )
        return self._checked_mean(sums, kept, kept_before, epoch, (checked, steps - 1))[0]

    def _checked_mean(
        self,
        sums: dict[str, torch.Tensor],
        kept: torch.Tensor,
        kept_before: float,
        epoch: int,
        unchecked: tuple[int, int],
    ) -> tuple[dict[str, float], float]:
        """Read the summed loss terms back and check them: finite, and at least one step of
        the ``unchecked`` range (steps) kept. Returns the means and the steps kept so far."""
        counted = float(kept)
        means = {name: float(value) / max(counted, 1.0) for name, value in sums.items()}
        if counted == kept_before or not math.isfinite(means["total"]):
            loss = means["total"] if counted > kept_before else "not finite at every step"
            terms = [name for name, value in means.items() if not math.isfinite(value)]
            raise NonFiniteLossError(
                f"loss is {loss} at epoch {epoch + 1}, step {_span(*unchecked)} "
                f"(lr={self.optimizer.param_groups[0]['lr']:.3g}, precision "
                f"{self.precision.name}; not finite: {', '.join(terms) or 'none kept'})"
            )
        return means, counted

    def train_step(
        self, clips: torch.Tensor, pids: torch.Tensor, erased: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch already on the device (normalised clips, labels
        checked, ``erased[B, T]`` the erased-frame labels the attention loss needs); returns
        the detached loss terms, still on the device (nothing is read back).
        """
        return optimisation_step(self, clips, pids, erased, self.cfg.loss.center_weight)

    def fit(
        self, *, callbacks: Sequence[Callback] = (), resume_from: Path | None = None
    ) -> FitResult:
        """Train for ``cfg.epochs`` epochs, evaluating every ``cfg.eval_every`` and at the end.

        At each evaluated epoch (and the last one) the order is: train, evaluate, append the
        epoch's line to ``metrics.jsonl``, write the checkpoint, call ``on_epoch_end`` of every
        callback; so every checkpoint's epoch is in the log it resumes with, even after a crash
        between the two writes. A callback raising
        :class:`StopTraining` ends training after that epoch; any other exception from a
        callback propagates, after the epoch's checkpoint has been written.

        Args:
            callbacks: Hooks called in order, after the trainer's own :class:`MetricsLog`
                (which writes ``metrics.jsonl``, ahead of the checkpoint).
            resume_from: A checkpoint (or run directory) to continue from, exactly: weights,
                optimisers, schedule, scaler, centers and RNG states are restored.

        Returns:
            Final and best metrics, epochs run and the last checkpoint.

        Raises:
            NonFiniteLossError: If the loss becomes NaN or infinite.
            CheckpointError: If ``resume_from`` cannot be used.
        """
        state = _FitState()
        if resume_from is not None:
            self._resume(Path(resume_from), state)
        elif self.cfg.init_from:
            self.init_source = init_from_checkpoint(self.model, Path(self.cfg.init_from)).to_dict()
        config_file = config_path(self.output_dir)
        write_json_atomic(config_file, self.cfg.to_dict())
        metrics_log = MetricsLog(self.output_dir, start_epoch=state.next_epoch)
        hooks = (metrics_log, *callbacks)
        state.clock_start = (time.monotonic(), state.next_epoch)
        failed = True
        try:
            try:
                for callback in hooks:
                    callback.on_train_start(self)
            except StopTraining as exc:
                logger.info("training stopped before it started: %s", exc)
                state.stopped = True
            while state.next_epoch < self.cfg.epochs and not state.stopped:
                self._run_epoch(state.next_epoch, state, metrics_log, callbacks)
            failed = False
        finally:
            self._loader = None  # lets persistent loader workers exit
            result = state.result()
            if not failed:
                write_json_atomic(
                    self.output_dir / RESULTS_NAME,
                    {
                        **result.to_dict(),
                        "config": self.cfg.to_dict(),
                        "code": code_version(),
                        "init_from": self.init_source,
                    },
                )
            for callback in hooks:
                try:
                    callback.on_train_end(result)
                except Exception:
                    if not failed:
                        raise
                    logger.exception("on_train_end of %r failed during a failed run", callback)
        logger.info(
            "training done after %d epoch(s)%s",
            result.epochs_run,
            "" if not result.final_metrics else ": " + _format_metrics(result.final_metrics),
        )
        return result

    def _run_epoch(
        self,
        epoch: int,
        state: _FitState,
        metrics_log: MetricsLog,
        callbacks: Sequence[Callback],
    ) -> None:
        lr = float(self.optimizer.param_groups[0]["lr"])
        losses = self.train_one_epoch(epoch)
        self.scheduler.step()
        last = epoch == self.cfg.epochs - 1
        due = (epoch + 1) % self.cfg.eval_every == 0 or last
        metrics = None
        if due and self.eval_split is not None:
            state.last_evaluation = self.evaluate()
            metrics = state.last_evaluation.metrics
            state.record_metrics(epoch, metrics, self.monitor)
        state.next_epoch = epoch + 1
        metrics_log.on_epoch_end(EpochReport(epoch=epoch, losses=losses, lr=lr, metrics=metrics))
        checkpoint = self._save(epoch, state) if due else None
        started, first = state.clock_start
        elapsed = time.monotonic() - started
        eta = elapsed / (epoch + 1 - first) * (self.cfg.epochs - epoch - 1)
        logger.log(
            logging.INFO if self.log_epochs else logging.DEBUG,
            "epoch %d/%d, elapsed %s, ETA %s, lr %.3g, loss %.4f (%s)%s",
            epoch + 1,
            self.cfg.epochs,
            _duration(elapsed),
            _duration(eta),
            lr,
            losses["total"],
            " ".join(f"{name} {value:.4g}" for name, value in losses.items() if name != "total"),
            "" if metrics is None else ", " + _format_metrics(metrics),
        )
        report = EpochReport(
            epoch=epoch, losses=losses, lr=lr, metrics=metrics, checkpoint=checkpoint
        )
        state.history.append({"epoch": epoch + 1, "losses": losses, "lr": lr, "metrics": metrics})
        pending: BaseException | None = None
        for callback in callbacks:
            try:
                callback.on_epoch_end(report)
            except StopTraining as exc:
                logger.info("training stopped by %s after epoch %d: %s", callback, epoch + 1, exc)
                state.stopped = True
            except Exception as exc:
                pending = exc
                break
        if (state.stopped or pending is not None) and checkpoint is None:
            self._save(epoch, state)
        if pending is not None:
            raise pending

    # ----------------------------------------------------------------------- checkpoints
    def state_dict(self, epoch: int, state: _FitState | None = None) -> dict[str, Any]:
        """Everything needed to resume after ``epoch`` (0-based index), as a checkpoint payload
        (which counts epochs from 1: ``epoch + 1``)."""
        return {
            "epoch": epoch + 1,
            "num_classes": self.num_classes,
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "center_optimizer": (
                None if self.center_optimizer is None else self.center_optimizer.state_dict()
            ),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "metrics": None if state is None else state.last_metrics,
            "best_metrics": None if state is None else state.best_metrics,
            "best_epoch": None if state is None else state.best_epoch,
            "config": self.cfg.to_dict(),
            "init_from": self.init_source,
        }

    def _save(self, epoch: int, state: _FitState) -> Path:
        path = self.checkpoints.save(self.state_dict(epoch, state), epoch=epoch + 1)
        state.checkpoint = path
        logger.debug("checkpoint written: %s", path)
        return path

    def _resume(self, path: Path, state: _FitState) -> None:
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt.get("num_classes") != self.num_classes:
            raise CheckpointError(
                f"checkpoint {path} was trained on {ckpt.get('num_classes')} ids, "
                f"this run has {self.num_classes}"
            )
        changed = _changed_keys(ckpt.get("config", {}), self.cfg.to_dict())
        if changed:
            logger.warning("resuming %s with a different config: %s", path, ", ".join(changed))
        try:
            self.model.load_state_dict(ckpt["model"])
            self.criterion.load_state_dict(ckpt["criterion"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.center_optimizer is not None and ckpt["center_optimizer"] is not None:
                self.center_optimizer.load_state_dict(ckpt["center_optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt["scaler"]:
                self.scaler.load_state_dict(ckpt["scaler"])
            elif self.precision.uses_scaler:
                # Written without a scaler (float32 or bf16, e.g. on a CPU worker): start
                # the fp16 loss scale afresh, as a new run would.
                logger.info("checkpoint %s has no gradient-scaler state; starting a new one", path)
            set_rng_state(ckpt["rng"])
            state.next_epoch = int(ckpt["epoch"])  # 1-based epoch done = next 0-based index
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CheckpointError(f"checkpoint {path} does not fit this run: {first}") from exc
        self.init_source = ckpt.get("init_from")
        state.last_metrics = ckpt.get("metrics")
        state.best_metrics = ckpt.get("best_metrics")
        state.best_epoch = ckpt.get("best_epoch")
        state.checkpoint = Path(path)
        self.checkpoints.drop_after(state.next_epoch)  # an abandoned later run's
        logger.info("resumed from %s after epoch %d", path, state.next_epoch)


class _FitState:
    """Mutable bookkeeping of one ``fit`` call."""

    def __init__(self) -> None:
        self.next_epoch = 0
        self.clock_start = (time.monotonic(), 0)
        """When this call started training, and at which epoch (for elapsed and ETA)."""
        self.stopped = False
        self.last_metrics: dict[str, float] | None = None
        self.best_metrics: dict[str, float] | None = None
        self.best_epoch: int | None = None
        self.checkpoint: Path | None = None
        self.history: list[dict[str, Any]] = []
        self.last_evaluation: EvaluationResult | None = None

    def record_metrics(self, epoch: int, metrics: dict[str, float], monitor: str) -> None:
        self.last_metrics = metrics
        value = metrics.get(monitor, math.nan)
        best = math.nan if self.best_metrics is None else self.best_metrics.get(monitor, math.nan)
        if self.best_metrics is None or (not math.isnan(value) and not value <= best):
            self.best_metrics = metrics
            self.best_epoch = epoch + 1

    def result(self) -> FitResult:
        return FitResult(
            final_metrics=self.last_metrics,
            best_metrics=self.best_metrics,
            best_epoch=self.best_epoch,
            epochs_run=self.next_epoch,
            checkpoint=self.checkpoint,
            stopped_early=self.stopped,
            history=tuple(self.history),
            final_evaluation=self.last_evaluation,
        )


def _relabel(records: tuple[Tracklet, ...]) -> tuple[Tracklet, ...]:
    """Map training pids onto 0..n-1 (a carved-out split leaves gaps)."""
    pids = sorted({t.pid for t in records})
    if pids == list(range(len(pids))):
        return records
    mapping = {pid: label for label, pid in enumerate(pids)}
    return tuple(replace(t, pid=mapping[t.pid]) for t in records)


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key in _RESUME_FREE_KEYS:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif (list(a) if isinstance(a, tuple | list) else a) != (
            list(b) if isinstance(b, tuple | list) else b
        ):
            changed.append(f"{prefix}{key}")
    return changed


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _duration(seconds: float) -> str:
    """``H:MM:SS``, rounded to the second."""
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def _format_metrics(metrics: dict[str, float]) -> str:
    """Metrics in %, as torchreid prints them (``mAP 45.1% rank1 62.5%``)."""
    return " ".join(f"{name} {100 * value:.1f}%" for name, value in metrics.items())
