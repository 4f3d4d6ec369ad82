"""An S3-compatible object store holding a study's artifacts (``artifacts.kind: s3``).

Keys mirror the local layout: the file ``<artifacts.root>/<rel>`` is the object
``<prefix>/<rel>``, so ``<prefix>/<study uuid>/trial_<n>/run_<k>/epoch_0007.pt``. Every
operation goes through boto3's S3 client (the reason, against s3fs and Optuna's
``Boto3ArtifactStore``, is in README.md, "Artifacts"): an object appears whole or not at all
(a single PUT, or a multipart upload completed at its end), listing and deleting by prefix
are two calls, and a download lands in a temporary file renamed into place. Credentials come
only from boto3's standard chain (environment, profile, instance or pod role); no message
names them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from hpo.errors import ReidHpoError

if TYPE_CHECKING:
    from hpo.spec import ArtifactsSpec

logger = logging.getLogger(__name__)

_DELETE_BATCH = 1000  # what one DeleteObjects request takes


class ObjectStoreError(ReidHpoError):
    """The object store cannot be reached or refused a request (credentials, bucket, network)."""


@dataclass(frozen=True)
class StoredObject:
    """One object under the store's prefix: its key relative to the prefix, and its size."""

    rel: str
    size: int


class ObjectStore:
    """The study artifacts' bucket and prefix, with the few operations the service needs.

    Args:
        bucket: The bucket (it must exist).
        prefix: Key prefix of every object (``""``: the bucket's top level).
        endpoint_url: An S3-compatible server (MinIO, Ceph, ...); AWS when None.
        region: The bucket's region (boto3's default chain when None).
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        import boto3  # loaded only by commands that touch an object store
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # A session of its own: credentials are looked up now (environment, profile, role),
        # not taken from a process-wide session that resolved them earlier.
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )

    def check(self) -> None:
        """Ask for the bucket (HEAD): it exists and these credentials may use it.

        Raises:
            ObjectStoreError: It does not, or the store cannot be reached.
        """
        self._call("reach the bucket", "", self._client.head_bucket, Bucket=self.bucket)

    def key(self, rel: str) -> str:
        """The object key of ``rel`` (a path relative to the artifacts root)."""
        rel = rel.strip("/")
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def upload(self, path: Path, rel: str) -> None:
        """Put the file ``path`` at ``rel`` (whole or not at all; multipart when large)."""
        self._call("upload", rel, self._client.upload_file, str(path), self.bucket, self.key(rel))

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Put ``data`` at ``rel`` in one request."""
        self._call(
            "put", rel, self._client.put_object, Bucket=self.bucket, Key=self.key(rel), Body=data
        )

    def get_bytes(self, rel: str) -> bytes | None:
        """The object at ``rel``, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.key(rel))
            return bytes(answer["Body"].read())
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._error("get", rel, exc) from None
        except Exception as exc:  # botocore's network and credential errors
            raise self._error("get", rel, exc) from None

    def download(self, rel: str, path: Path) -> None:
        """Copy the object at ``rel`` to ``path`` (a temporary file renamed into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            self._call(
                "download", rel, self._client.download_file, self.bucket, self.key(rel), str(tmp)
            )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def copy(self, source: str, target: str) -> None:
        """Copy an object inside the bucket (server side; multipart when large)."""
        where = {"Bucket": self.bucket, "Key": self.key(source)}
        self._call("copy", source, self._client.copy, where, self.bucket, self.key(target))

    def list(self, rel_prefix: str) -> list[StoredObject]:
        """Every object under the folder ``rel_prefix`` (relative to the store's prefix)."""
        folder = self.key(rel_prefix).rstrip("/") + "/"
        paginator = self._client.get_paginator("list_objects_v2")
        found: list[StoredObject] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                found += [
                    StoredObject(self._rel(o["Key"]), o["Size"]) for o in page.get("Contents", [])
                ]
        except Exception as exc:
            raise self._error("list", rel_prefix, exc) from None
        return found

    def delete(self, rels: Iterable[str]) -> int:
        """Delete the objects at ``rels``; returns how many were asked for."""
        keys = [self.key(rel) for rel in rels]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + _DELETE_BATCH]]
            answer = self._call(
                "delete",
                batch[0]["Key"],
                self._client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise ObjectStoreError(
                    f"{self.url}: cannot delete {first.get('Key')}: {first.get('Message')}"
                )
        return len(keys)

    def delete_folder(self, rel_prefix: str) -> int:
        """Delete every object under the folder ``rel_prefix``; returns how many."""
        return self.delete(o.rel for o in self.list(rel_prefix))

    def _call(self, what: str, rel: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # botocore's client, network and credential errors
            raise self._error(what, rel, exc) from None

    def _error(self, what: str, rel: str, exc: Exception) -> ObjectStoreError:
        target = f" {rel}" if rel else ""
        return ObjectStoreError(f"{self.url}: cannot {what}{target}: {type(exc).__name__}: {exc}")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def open_store(artifacts: ArtifactsSpec) -> ObjectStore | None:
    """The object store of an ``artifacts:`` setting (None for ``kind: filesystem``)."""
    if artifacts.kind != "s3" or artifacts.bucket is None:
        return None
    return ObjectStore(
        artifacts.bucket,
        prefix=artifacts.prefix,
        endpoint_url=artifacts.endpoint_url,
        region=artifacts.region,
    )


__all__ = ["ObjectStore", "ObjectStoreError", "StoredObject", "open_store"]
