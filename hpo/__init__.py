"""reid-hpo: Optuna studies on PostgreSQL that tune the video re-ID model of ``reid_core``."""

__version__ = "0.1.0"
