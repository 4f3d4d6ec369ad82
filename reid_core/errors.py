"""Exceptions that users can cause; the CLI turns each into one line and exit code 2."""

from __future__ import annotations


class ReidError(Exception):
    """Base class of every error a user can cause (bad data, bad config, bad name)."""


class UnknownNameError(ReidError, KeyError):
    """A registry lookup with a name that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a plain sentence.
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(ReidError):
    """A dataset root or one of its required files is missing."""


class DatasetFormatError(ReidError):
    """A dataset file exists but cannot be parsed (names the file)."""


class EvaluationError(ReidError):
    """Evaluation is impossible, e.g. no query has a valid match in the gallery."""


class OutputFileError(ReidError):
    """A file named for output cannot be written: a directory, device, FIFO, or unwritable."""


class CheckpointError(ReidError):
    """A checkpoint is missing, truncated, or fails its checksum."""


class ConfigError(ReidError):
    """A training configuration is inconsistent (e.g. batch size not divisible by K)."""


class NonFiniteLossError(ReidError):
    """The training loss became NaN or infinite (names the epoch and the step)."""


class PretrainedWeightsError(ReidError):
    """``pretrained`` was asked for and the ImageNet weights file is not on this machine."""
