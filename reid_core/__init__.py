"""reid_core: a small library for video person re-identification.

It reads MARS, iLIDS-VID and PRID-2011, builds the TP / TA / TA_BT video models, the
bag-of-tricks losses (label-smoothed CE, batch-hard triplet, center, OSM+CAA), trains and
evaluates them. It knows nothing of Optuna, studies or YAML: the ``hpo`` package builds on it.
"""

__version__ = "0.1.0"
