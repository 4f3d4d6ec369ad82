"""Download torchvision's ImageNet weights file, check its SHA-256, move it in place atomically.

The file name torchvision gives a weights file carries the first hex digits of its SHA-256
(``resnet50-0676ba61.pth``); torchvision's own downloader checks that prefix, and so does this
one. The download goes to a hidden temporary file in the destination folder, hashed while it
is written, flushed to disk and renamed over the final name only once the hash matches: a
reader never sees a partial file. A file already there with the right hash is kept (nothing
is downloaded); one with the wrong hash is replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from hpo.errors import ReidHpoError
from hpo.errors import one_line

__all__ = [
    "ENV_BASE_URL",
    "FetchResult",
    "OfflineError",
    "fetch_weights",
    "verify_weights",
    "weights_file_name",
]

ENV_BASE_URL = "REID_HPO_WEIGHTS_BASE_URL"
"""Folder URL the weights file is downloaded from instead of torchvision's (a mirror)."""

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torchvision.hub's HASH_REGEX
_BLOCK = 1 << 20
_TIMEOUT_S = 60.0


class OfflineError(ReidHpoError):
    """The weights server cannot be reached; the message says how to copy the file by hand."""


@dataclass(frozen=True)
class FetchResult:
    """Where the weights file is and whether this call downloaded it."""

    path: Path
    url: str
    sha256: str
    downloaded: bool


def weights_file_name(backbone: str) -> tuple[str, str]:
    """``(url, file name)`` of the ImageNet weights (``IMAGENET1K_V1``) of ``backbone``.

    Raises:
        PretrainedWeightsError: ``backbone`` has no ImageNet weights.
        UnknownNameError: ``backbone`` is not registered.

    Example:
        >>> weights_file_name("resnet50")[1]
        'resnet50-0676ba61.pth'
    """
    from reid_core.errors import PretrainedWeightsError
    from reid_core.models import expected_weights_path

    expected = expected_weights_path(backbone)
    if expected is None:
        raise PretrainedWeightsError(f"no ImageNet weights exist for backbone {backbone}")
    return f"https://download.pytorch.org/models/{expected.name}", expected.name


def fetch_weights(
    backbone: str = "resnet50",
    *,
    dest: Path | None = None,
    base_url: str | None = None,
    timeout_s: float = _TIMEOUT_S,
) -> FetchResult:
    """Put the ImageNet weights of ``backbone`` into ``dest``, checksum verified.

    Args:
        backbone: A registered backbone with ImageNet weights.
        dest: The folder of the file (default: the torch hub cache,
            ``torch.hub.get_dir()/checkpoints``, where training reads it).
        base_url: Folder URL to download from (default ``$REID_HPO_WEIGHTS_BASE_URL``, else
            torchvision's ``https://download.pytorch.org/models``).
        timeout_s: Seconds without data after which the download is given up.

    Returns:
        The file, the URL and its SHA-256, and whether it was downloaded now.

    Raises:
        OfflineError: The server cannot be reached (names the URL and the manual copy).
        ReidHpoError: The download's SHA-256 does not start with the file name's prefix, or
            the server answered with an error.
    """
    default_url, name = weights_file_name(backbone)
    base = base_url or os.environ.get(ENV_BASE_URL)
    url = f"{base.rstrip('/')}/{name}" if base else default_url
    folder = Path(dest) if dest is not None else Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / name
    if path.is_file():
        with contextlib.suppress(ReidHpoError):  # a wrong file is replaced
            return FetchResult(path, url, verify_weights(path), downloaded=False)
    digest = _download(url, path, _hash_prefix(name), timeout_s)
    return FetchResult(path, url, digest, downloaded=True)


def verify_weights(path: Path) -> str:
    """The SHA-256 of a weights file, checked against the prefix its name carries.

    Raises:
        ReidHpoError: The hash does not start with that prefix (a corrupt or wrong file).
    """
    prefix = _hash_prefix(path.name)
    digest = _sha256(path)
    if not digest.startswith(prefix):
        raise ReidHpoError(
            f"{path}: SHA-256 {digest} does not start with {prefix} (corrupt or wrong file)"
        )
    return digest


def _hash_prefix(name: str) -> str:
    match = _HASH_IN_NAME.search(name)
    if match is None:
        raise ReidHpoError(f"weights file name {name} carries no SHA-256 prefix")
    return match.group(1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, path: Path, prefix: str, timeout_s: float) -> str:
    """Stream ``url`` into a temporary file beside ``path``, check the hash, rename. Nothing
    is created (not even the folder) when the server cannot be reached."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        raise ReidHpoError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OfflineError(
            f"cannot download {url} ({one_line(reason)}); on a machine with network access "
            f"download that file, check that its sha256sum starts with {prefix} and copy it "
            f"to {path}"
        ) from None
    digest = hashlib.sha256()
    with response:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                while block := response.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            found = digest.hexdigest()
            if not found.startswith(prefix):
                raise ReidHpoError(
                    f"checksum mismatch for {url}: SHA-256 {found} does not start with {prefix} "
                    "(a corrupt download or a wrong file); nothing was written"
                )
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from the other users of a cache
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return found
