"""Where a distributed fan-out keeps what does not fit in its state: the batches, and the Map's results.

A plan past an inline Map's limits (:func:`kairos_runtime.fan_out.choose_map`) writes its batches as
one JSON array to the stage's fan-out bucket, under the task's own prefix (:func:`fan_out_prefix`);
the Distributed Map reads them (``ItemReader``, ``s3:getObject``, ``InputType: JSON``) and writes
its children's outputs back with ``ResultWriter``: a ``manifest.json`` naming result files, each a
JSON array of executions (``Status``, ``Input`` and ``Output`` as JSON strings, ``Error`` when one
failed). The summary reads them here (:func:`read_map_results`).

:class:`S3Objects` is the store in AWS; :class:`DirectoryObjects` is the same store in a directory,
for ``kairos run``, whose driver writes the results in ResultWriter's shape
(:func:`write_map_results`) so the summary reads them through the same code
(docs/adr/0164-distributed-map-past-the-inline-limits.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

FAN_OUT_PREFIX = "fan-out/"
"""Every fan-out object's key starts here (the bucket's expiry rule matches it)."""
RESULTS_FOLDER = "results"
"""Under a task's prefix: where its Distributed Map's ResultWriter writes."""
BATCHES_FOLDER = "batches"
"""Under a task's prefix: where its planner writes each distributed plan's batches."""
LOCAL_BUCKET = "local"
"""The bucket name a directory store answers with."""


class FanOutObjectError(RuntimeError):
    """A fan-out object is missing, malformed, or outside the task's own prefix."""


def fan_out_prefix(task: str) -> str:
    """The task's own key prefix: its grants reach these keys and no other task's."""
    return f"{FAN_OUT_PREFIX}{task}/"


def results_prefix(task: str) -> str:
    return f"{fan_out_prefix(task)}{RESULTS_FOLDER}"


def batches_prefix(task: str) -> str:
    return f"{fan_out_prefix(task)}{BATCHES_FOLDER}"


def batches_key(task: str, request_id: str) -> str:
    """One key per plan invocation: a retried plan writes its own object, never another's."""
    return f"{batches_prefix(task)}/{request_id}.json"


class ObjectStore(Protocol):
    @property
    def bucket(self) -> str: ...

    def put_json(self, key: str, value: Any) -> None: ...

    def get_json(self, key: str) -> Any: ...


def _encoded(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _decoded(body: bytes, where: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as malformed:
        raise FanOutObjectError(f"{where} is not JSON: {malformed}") from None


class S3Objects:
    """The stage's fan-out bucket (``KAIROS_FAN_OUT_BUCKET``); boto3 is imported on first use."""

    def __init__(self, bucket: str, client_factory: Callable[[], Any] | None = None) -> None:
        self._bucket = bucket
        self._client_factory = client_factory
        self._client: Any = None

    @property
    def bucket(self) -> str:
        return self._bucket

    def _s3(self) -> Any:
        if self._client is None:
            if self._client_factory is not None:
                self._client = self._client_factory()
            else:
                import boto3

                self._client = boto3.client("s3")
        return self._client

    def put_json(self, key: str, value: Any) -> None:
        self._s3().put_object(Bucket=self._bucket, Key=key, Body=_encoded(value), ContentType="application/json")

    def get_json(self, key: str) -> Any:
        try:
            body = self._s3().get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except Exception as failure:
            if type(failure).__name__ in ("NoSuchKey", "NoSuchBucket"):
                raise FanOutObjectError(f"s3://{self._bucket}/{key} does not exist") from None
            raise
        return _decoded(body, f"s3://{self._bucket}/{key}")


class DirectoryObjects:
    """The same store in a directory (``KAIROS_FAN_OUT_DIR``): a key is a relative path under it."""

    def __init__(self, root: Path) -> None:
        self._root = root

    @property
    def bucket(self) -> str:
        return LOCAL_BUCKET

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts:
            raise FanOutObjectError(f"object key {key!r} leaves the store")
        return self._root.joinpath(*relative.parts)

    def put_json(self, key: str, value: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_encoded(value))

    def get_json(self, key: str) -> Any:
        path = self._path(key)
        if not path.is_file():
            raise FanOutObjectError(f"{path} does not exist")
        return _decoded(path.read_bytes(), str(path))


def checked_key(store: ObjectStore, location: Any, task: str) -> str:
    """The key of ``location`` (``{"bucket", "key"}``), refused unless it is in ``store`` under ``task``'s prefix."""
    if not isinstance(location, Mapping) or not isinstance(location.get("key"), str):
        raise FanOutObjectError(f"an object location needs 'bucket' and 'key', got {location!r}"[:300])
    key = str(location["key"])
    if location.get("bucket") != store.bucket or not key.startswith(fan_out_prefix(task)):
        where = f"s3://{location.get('bucket')}/{key}"
        raise FanOutObjectError(f"{where} is not under {fan_out_prefix(task)} of this stage's fan-out bucket")
    return key


def read_map_results(store: ObjectStore, details: Mapping[str, Any], task: str) -> list[dict[str, Any]]:
    """The Distributed Map's results from its ResultWriter manifest: each succeeded child's output (a
    batch report, or ``{"index", "error"}`` the Catch made), and ``{"index", "error"}`` for a child
    execution that failed, timed out or was aborted. A batch with no entry counts as unreported."""
    manifest_key = checked_key(store, {"bucket": details.get("Bucket"), "key": details.get("Key")}, task)
    manifest = store.get_json(manifest_key)
    files = manifest.get("ResultFiles") if isinstance(manifest, Mapping) else None
    if not isinstance(files, Mapping):
        raise FanOutObjectError(f"{manifest_key} has no ResultFiles")
    results: list[dict[str, Any]] = []
    for entries in files.values():
        for result_file in entries or ():
            key = checked_key(store, {"bucket": store.bucket, "key": result_file.get("Key")}, task)
            executions = store.get_json(key)
            if not isinstance(executions, list):
                raise FanOutObjectError(f"{key} is not a JSON array of executions")
            results.extend(_result(execution, key) for execution in executions)
    return results


def _result(execution: Mapping[str, Any], where: str) -> dict[str, Any]:
    if execution.get("Status") == "SUCCEEDED":
        output = json.loads(execution["Output"]) if isinstance(execution.get("Output"), str) else None
        if isinstance(output, dict) and "index" in output:
            return output
        raise FanOutObjectError(f"{where}: a succeeded execution's Output is not a batch report")
    given = json.loads(execution["Input"]) if isinstance(execution.get("Input"), str) else {}
    batch = given.get("batch") if isinstance(given, Mapping) else None
    if not isinstance(batch, Mapping) or not isinstance(batch.get("index"), int):
        raise FanOutObjectError(f"{where}: a {execution.get('Status')} execution's Input names no batch")
    return {"index": batch["index"], "error": str(execution.get("Error") or execution.get("Status") or "Failed")}


def write_map_results(
    store: ObjectStore, task: str, run: str, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """What ResultWriter writes for a Map run's children (``inputs[i]`` answered ``outputs[i]``):
    one result file of succeeded executions and the manifest; returns ``ResultWriterDetails``."""
    folder = f"{results_prefix(task)}/{run}"
    executions = [
        {"Input": json.dumps(given), "Output": json.dumps(output), "Status": "SUCCEEDED"}
        for given, output in zip(inputs, outputs, strict=True)
    ]
    result_key = f"{folder}/SUCCEEDED_0.json"
    store.put_json(result_key, executions)
    manifest_key = f"{folder}/manifest.json"
    store.put_json(
        manifest_key,
        {
            "DestinationBucket": store.bucket,
            "MapRunArn": f"local:{run}",
            "ResultFiles": {
                "FAILED": [],
                "PENDING": [],
                "SUCCEEDED": [{"Key": result_key, "Size": len(_encoded(executions))}],
            },
        },
    )
    return {"Bucket": store.bucket, "Key": manifest_key}
