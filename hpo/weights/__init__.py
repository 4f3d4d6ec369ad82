"""``reid-hpo weights fetch``: the ImageNet weights of a backbone into the torch hub cache."""

from __future__ import annotations

from hpo.weights._fetch import ENV_BASE_URL
from hpo.weights._fetch import FetchResult
from hpo.weights._fetch import OfflineError
from hpo.weights._fetch import fetch_weights
from hpo.weights._fetch import verify_weights
from hpo.weights._fetch import weights_file_name

__all__ = [
    "ENV_BASE_URL",
    "FetchResult",
    "OfflineError",
    "fetch_weights",
    "verify_weights",
    "weights_file_name",
]
