"""MLflow: tracking set-up, provenance tags and the model registry (aliases)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from lakeforge.core.settings import Settings
from lakeforge.core.errors import LakeforgeError, ModelNotFoundError

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# A tracking server that stops answering mid-run: MLflow's client retries each request 7 times with
# a backoff factor of 2 (about four minutes) before it fails. lakeforge's jobs are retried by their
# scheduler, so a request gives up after 3 retries 2, 4 and 8 s apart (about 15 s); the environment
# variables still override these defaults.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

# MLflow configures its loggers at import (INFO); keep lakeforge's console readable.
for _name in ("mlflow", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def check_reachable(settings: Settings, timeout: float = 10.0) -> None:
    """A tracking server (http/https URI) that refuses connections or does not answer is one
    LakeforgeError line at once; MLflow's own client would retry for about four minutes and then
    fail with a long urllib3 message. Any HTTP answer (even 401 or 404) counts as reachable."""
    import urllib.error
    import urllib.request

    uri = settings.tracking_uri
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()  # noqa: S310 - the configured server
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LakeforgeError(
            f"MLflow tracking server {_without_credentials(uri)} is not reachable ({reason}); start it, or point mlflow.tracking_uri "
            "(conf/base.yaml, a --env or --conf overlay) at a running server, then rerun"
        ) from None


def _without_credentials(uri: str) -> str:
    """``uri`` without a user:password@ part (secrets stay out of messages and logs)."""
    scheme, sep, rest = uri.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}"


def configure(settings: Settings) -> str:
    """Point MLflow at the configured stores; return the experiment id (created if needed)."""
    check_reachable(settings)
    tracking = settings.tracking_uri
    if tracking.startswith("sqlite:///"):
        Path(tracking.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(settings.registry_uri)
    name = settings.mlflow.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if tracking.startswith(("http://", "https://")) and "://" not in settings.mlflow.artifact_root:
        # an `mlflow server`: its own artifact store (proxied) unless a URI is configured
        return mlflow.create_experiment(name)
    artifacts = settings.uri(settings.mlflow.artifact_root)
    if "://" not in artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        artifacts = Path(artifacts).as_uri()
    return mlflow.create_experiment(name, artifact_location=artifacts)


def git_commit(root: Path) -> str:
    """The project's git commit (with '-dirty' when the work tree has changes), or 'unknown'."""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def resolve_model(name: str, alias: str | None = None, version: str | int | None = None) -> ModelRef:
    """Resolve a registered model by explicit version, else by alias — once, up front."""
    client = MlflowClient()
    try:
        if version is not None:
            mv = client.get_model_version(name, str(version))
            return ModelRef(name, str(mv.version))
        mv = client.get_model_version_by_alias(name, alias or "champion")
        return ModelRef(name, str(mv.version), alias)
    except MlflowException:
        what = f"version {version}" if version is not None else f"alias {alias!r}"
        raise ModelNotFoundError(
            f"model registry {mlflow.get_registry_uri()}: no {what} of model {name!r}; "
            "run 'lakeforge train <pipeline.yaml>' first"
        ) from None


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, str(version))


# Loaded PipelineModels, newest last: a registered version's files never change, so a process
# that scores several run dates (a backfill, a monitoring replay) or compares a champion again
# loads it once. Keyed by the stores, the version's run and the SparkContext it was loaded into.
_LOADED: OrderedDict[tuple, object] = OrderedDict()
_LOADED_MAX = 4


def load_spark_model(ref: ModelRef):
    """The registered version as a Spark PipelineModel (loaded once per process and SparkContext)."""
    import mlflow.spark

    key = _cache_key(ref)
    if key is not None and key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    model = mlflow.spark.load_model(ref.uri)
    if key is not None:
        _remember(key, model)
    return model


def remember_spark_model(ref: ModelRef, model) -> None:
    """``model`` is what version ``ref`` holds (it was just logged from it): a later
    load_spark_model of that version in this process returns it instead of reading the files
    back (a champion compared in the next training, the scoring step of ``lakeforge run``)."""
    key = _cache_key(ref)
    if key is not None:
        _remember(key, model)


def _cache_key(ref: ModelRef) -> tuple | None:
    """The stores, the version's run and the SparkContext; None when ``ref`` is not a
    registered version (e.g. a runs:/ URI: never cached)."""
    import mlflow
    from pyspark import SparkContext

    try:
        run_id = MlflowClient().get_model_version(ref.name, ref.version).run_id
    except MlflowException:
        return None
    context = SparkContext._active_spark_context
    return (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), ref.name, ref.version, run_id,
            id(context._jsc) if context is not None else None)


def _remember(key: tuple, model) -> None:
    _LOADED[key] = model
    _LOADED.move_to_end(key)
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)


def model_task(ref: ModelRef) -> str:
    """The task a registered version was trained for (tag ``lakeforge.task``; binary before it existed)."""
    try:
        mv = MlflowClient().get_model_version(ref.name, ref.version)
    except MlflowException:
        return "binary"
    return mv.tags.get("lakeforge.task", "binary")
