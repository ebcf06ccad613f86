"""Where a served model comes from: the MLflow registry (a version, or an alias re-checked while
serving) or an exported folder (lakeforge.serving.export), and what is known about it.

A ``ServedModel`` is everything one request needs: name, version, task, threshold, the key
column, the input columns with their MLflow signature types, and a scorer. The ``ModelHolder``
keeps the current one; a reload loads the new version *beside* it and swaps the reference in one
assignment, so a request in flight keeps the model it started with.

Nothing here imports pyspark; MLflow is imported only to read the registry (never for an
exported folder), and the Spark fallback scorer only when asked for.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import yaml

from lakeforge.core.errors import ConfigError, LakeforgeError
from lakeforge.serving.scorer.pipeline import PIPELINE_CLASSES

log = logging.getLogger("lakeforge.serve")
MANIFEST = "manifest.json"


class ScorerUnavailable(LakeforgeError):
    """The model has a stage the numpy scorer cannot compute (and no Spark fallback was asked for)."""


class Scorer(Protocol):
    kind: str  # "numpy" or "spark"
    stages: list[str]

    def transform(self, frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class InputColumn:
    name: str
    type: str  # an MLflow signature type: string, integer, long, double, float, boolean, datetime...


@dataclass
class ServedModel:
    name: str
    version: str
    alias: str | None
    task: str  # binary | multiclass | regression
    threshold: float | None
    key: str | None
    inputs: list[InputColumn]
    scorer: Scorer
    source: str  # models:/name/version, or the exported folder
    loaded_at: float = field(default_factory=time.time)

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "alias": self.alias, "task": self.task,
            "threshold": self.threshold, "key": self.key, "source": self.source,
            "signature": [{"name": c.name, "type": c.type} for c in self.inputs],
            "scorer": self.scorer.kind, "stages": list(self.scorer.stages),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
        }


@dataclass(frozen=True)
class ModelFiles:
    """A model version's files on local disk and its registry facts."""

    name: str
    version: str
    folder: Path  # the MLflow model folder (MLmodel, sparkml/)
    task: str
    threshold: float | None


# --- reading an MLflow model folder (no MLflow import) -------------------------------------------

def signature_columns(model_folder: Path) -> list[dict]:
    """The MLmodel file's input signature as MLflow writes it: one dict per column (``name``,
    ``type``, and ``properties`` / ``items`` for objects and arrays)."""
    mlmodel = Path(model_folder) / "MLmodel"
    if not mlmodel.is_file():
        raise ConfigError(f"{model_folder}: no MLmodel file: not an MLflow model folder")
    sig = (yaml.safe_load(mlmodel.read_text()) or {}).get("signature") or {}
    if not sig.get("inputs"):
        raise ConfigError(f"{mlmodel}: the model has no input signature; retrain it with lakeforge train")
    return json.loads(sig["inputs"])


def signature_inputs(model_folder: Path) -> list[InputColumn]:
    """The input columns of the MLmodel file's signature."""
    return [InputColumn(c["name"], _type_name(c)) for c in signature_columns(model_folder)]


def _type_name(col: dict) -> str:
    t = col.get("type")
    return t if isinstance(t, str) else "object"


def stage_classes(spark_dir: Path) -> list[str]:
    """The Spark class names of a saved PipelineModel's stages, nested pipelines flattened."""
    meta = json.loads(next(iter(sorted((spark_dir / "metadata").glob("part-*")))).read_text().splitlines()[0])
    if meta["class"] not in PIPELINE_CLASSES:
        return [meta["class"].rsplit(".", 1)[-1]]
    out: list[str] = []
    uids = meta.get("paramMap", {}).get("stageUids", [])
    for i, uid in enumerate(uids):
        d = spark_dir / "stages" / f"{i}_{uid}"
        if not d.exists():  # Spark pads the index to the width of the stage count: 00_..., 01_...
            d = next(iter(sorted((spark_dir / "stages").glob(f"*_{uid}"))), d)
        out += stage_classes(d)
    return out


def spark_folder(model_folder: Path) -> Path:
    d = Path(model_folder) / "sparkml"
    if not (d / "metadata").is_dir():
        raise ConfigError(f"{model_folder}: no sparkml/ folder: not an MLflow spark-flavor model")
    return d


# --- scorers ---------------------------------------------------------------------------------------

class NumpyScorer:
    kind = "numpy"

    def __init__(self, model_folder: Path):
        from lakeforge.serving.scorer import UnsupportedStage, load_pipeline

        try:
            self.pipeline = load_pipeline(spark_folder(model_folder))
        except UnsupportedStage as exc:
            raise ScorerUnavailable(
                f"stage {exc} of the model cannot be computed without a JVM by lakeforge's numpy scorer; "
                "serve it with --spark-fallback (a local Spark session scores it)") from None
        self.stages = self.pipeline.stage_names

    def transform(self, frame):
        return self.pipeline.transform(frame)


def make_scorer(model_folder: Path, spark_fallback: Callable[[Path], Scorer] | None) -> Scorer:
    """The numpy scorer; with ``spark_fallback``, a stage it cannot compute makes that one."""
    try:
        return NumpyScorer(model_folder)
    except ScorerUnavailable as exc:
        if spark_fallback is None:
            raise
        log.warning("%s: scoring with Spark instead", str(exc).split(" of the model")[0])
        return spark_fallback(model_folder)


# --- the MLflow registry -----------------------------------------------------------------------------

def resolve_version(name: str, alias: str | None, version: str | None) -> str:
    """The registered version an alias (or an explicit version) names now."""
    from lakeforge.core import tracking

    return tracking.resolve_model(name, alias, version).version


def download_version(name: str, version: str, dest: Path) -> ModelFiles:
    """Download a registered version's model folder with the MLflow client into ``dest``."""
    import mlflow
    from mlflow import MlflowClient

    dest.mkdir(parents=True, exist_ok=True)
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dest)))
    tags = MlflowClient().get_model_version(name, version).tags
    threshold = tags.get("lakeforge.threshold")
    return ModelFiles(name, str(version), folder, tags.get("lakeforge.task", "binary"),
                      float(threshold) if threshold else None)


@dataclass
class Source:
    """How the server gets its model: a registered name + alias/version, or an exported folder."""

    name: str | None = None
    alias: str | None = "champion"
    version: str | None = None  # pinned: never reloaded
    key: str | None = None
    model_dir: Path | None = None
    spark_fallback: Callable[[Path], Scorer] | None = None

    @property
    def follows_alias(self) -> bool:
        return self.model_dir is None and self.version is None


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"--model-dir {folder}: no {MANIFEST}; write one with 'lakeforge export PIPELINE -o {folder}'")
    return json.loads(path.read_text())


def load_exported(folder: Path, spark_fallback=None) -> ServedModel:
    m = read_manifest(folder)
    model_folder = Path(folder) / m.get("model_path", "model")
    return ServedModel(
        name=m["name"], version=str(m["version"]), alias=m.get("alias"), task=m["task"], threshold=m.get("threshold"),
        key=m.get("key"), inputs=[InputColumn(c["name"], c["type"]) for c in m["inputs"]],
        scorer=make_scorer(model_folder, spark_fallback), source=str(Path(folder).resolve()))


class ModelHolder:
    """The current model and its reloads. ``current`` is read once per request."""

    def __init__(self, source: Source, cache: Path | None = None):
        self.source = source
        self.cache = Path(cache) if cache else None  # made by the first registry download (an exported folder needs none)
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.reloads = 0
        self._lock = threading.Lock()
        self.on_swap: list[Callable[[ServedModel | None, ServedModel], None]] = []

    def load_initial(self) -> ServedModel:
        src = self.source
        if src.model_dir is not None:
            model = load_exported(src.model_dir, src.spark_fallback)
        else:
            model = self._load_version(resolve_version(src.name, src.alias, src.version))
        self._swap(model)
        return model

    def _load_version(self, version: str) -> ServedModel:
        src = self.source
        if self.cache is None:
            self.cache = Path(tempfile.mkdtemp(prefix="lakeforge-serve-"))
        files = download_version(src.name, version, self.cache / f"v{version}-{time.time_ns()}")
        return ServedModel(
            name=src.name, version=files.version, alias=None if src.version else src.alias, task=files.task,
            threshold=files.threshold, key=src.key, inputs=signature_inputs(files.folder),
            scorer=make_scorer(files.folder, src.spark_fallback), source=f"models:/{src.name}/{files.version}")

    def _swap(self, new: ServedModel) -> None:
        old = self.current
        self.current = new  # the swap: one reference assignment
        for f in self.on_swap:
            f(old, new)

    def check(self) -> dict[str, Any]:
        """Re-resolve the alias; load and swap in a new version. Never raises (the old model keeps serving)."""
        if not self.source.follows_alias:
            return {"changed": False, "version": self.current.version, "reason": "pinned version or exported folder"}
        with self._lock:
            old = self.current
            try:
                version = resolve_version(self.source.name, self.source.alias, None)
                if old is not None and version == old.version:
                    self.last_error = None
                    return {"changed": False, "version": version}
                new = self._load_version(version)
            except (LakeforgeError, OSError, ValueError, KeyError) as exc:
                self.last_error = str(exc).splitlines()[0][:300]
                log.warning("reload failed, still serving version %s: %s", old and old.version, self.last_error)
                return {"changed": False, "version": old and old.version, "error": self.last_error}
            except Exception as exc:  # noqa: BLE001 - MLflow's own errors: the old model keeps serving
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                log.warning("reload failed, still serving version %s: %s", old and old.version, self.last_error)
                return {"changed": False, "version": old and old.version, "error": self.last_error}
            self._swap(new)
            self.reloads += 1
            self.last_error = None
            log.info("alias %s moved: now serving %s version %s (was %s)", self.source.alias, new.name, new.version,
                     old and old.version)
            return {"changed": True, "version": new.version, "previous": old and old.version}

    def close(self) -> None:
        if self.cache is not None:
            shutil.rmtree(self.cache, ignore_errors=True)

