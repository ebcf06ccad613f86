"""``lakeforge export``: a registered version as a folder that ``lakeforge serve --model-dir``
serves with Python only (no JVM, no pyspark, no MLflow registry).

Layout: ``<dir>/model/`` (the MLflow model folder as registered: MLmodel, sparkml/, ...) and
``<dir>/manifest.json`` (name, version, alias, task, threshold, key column, input columns with
their signature types, the stages, where and when it was exported).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

from lakeforge import __version__
from lakeforge.core.errors import ConfigError
from lakeforge.serving.model_store import (MANIFEST, ModelFiles, download_version, resolve_version, signature_inputs,
                                          spark_folder, stage_classes)


def export_model(name: str, key: str | None, out: Path, alias: str | None = "champion", version: str | None = None,
                 force: bool = False) -> dict:
    """Download ``name`` (``version``, else the version ``alias`` names) into ``out``; returns the manifest."""
    out = Path(out)
    _check_empty(out, force)
    resolved = resolve_version(name, alias, version)
    with tempfile.TemporaryDirectory(prefix="lakeforge-export-") as tmp:
        files = download_version(name, resolved, Path(tmp) / "model")
        return write_export(files, key, out, None if version else alias, force)


def _check_empty(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"--output {out}: the folder is not empty; choose another or pass --force to replace it")


def write_export(files: ModelFiles, key: str | None, out: Path, alias: str | None = None, force: bool = False) -> dict:
    """The folder ``lakeforge serve --model-dir`` serves, from a model version's local files:
    ``out/model`` (a copy of the MLflow model folder) and ``out/manifest.json``; returns the manifest."""
    out = Path(out)
    _check_empty(out, force)
    inputs = signature_inputs(files.folder)
    manifest = {
        "name": files.name, "version": files.version, "alias": alias, "task": files.task,
        "threshold": files.threshold, "key": key, "model_path": "model",
        "inputs": [{"name": c.name, "type": c.type} for c in inputs],
        "stages": stage_classes(spark_folder(files.folder)),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": f"models:/{files.name}/{files.version}", "lakeforge_version": __version__,
    }
    staging = out.with_name(out.name + ".exporting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copytree(files.folder, staging / "model")
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)  # the folder appears complete or not at all
    return manifest
