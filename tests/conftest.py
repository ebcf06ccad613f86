"""Shared fixtures: ONE SparkSession for the whole test run, built by lakeforge's own factory
against a temporary warehouse, metastore and MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lakeforge.core.settings import load_settings

pytest_plugins = ["fixtures_servers"]  # the api_server and postgres fixtures (tests/fixtures_servers.py)
ROOT = Path(__file__).resolve().parents[1]
TELCO_CSV = ROOT / "data" / "telco-customer-churn" / "Telco-Customer-Churn.csv"
TELCO_PIPELINE = ROOT / "conf" / "pipelines" / "telco_churn.yaml"


def write_overlay(folder: Path, **extra_spark) -> Path:
    """A settings overlay that keeps every store under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    overlay = {
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "ui": False, "driver_memory": "2g", **extra_spark},
        "catalog": {"warehouse_dir": str(folder / "warehouse")},
        "mlflow": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "artifact_root": str(folder / "artifacts")},
        "reports_dir": str(folder / "reports"),
    }
    path = folder / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def write_pipeline(folder: Path, base: Path = TELCO_PIPELINE, **changes) -> Path:
    """A copy of ``base`` with top-level keys (or 'a.b' paths) replaced."""
    data = yaml.safe_load(base.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    data["source"]["path"] = str(ROOT / data["source"]["path"]) if not Path(data["source"]["path"]).is_absolute() else data["source"]["path"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_lakeforge(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real console script in a new process from the project root."""
    exe = Path(sys.executable).with_name("lakeforge")
    full_env = {**os.environ, "LAKEFORGE_HOME": str(ROOT), **(env or {})}
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lakeforge-session")


@pytest.fixture(scope="session")
def overlay(store_dir) -> Path:
    return write_overlay(store_dir)


@pytest.fixture(scope="session")
def settings(overlay):
    return load_settings(overlays=[overlay], conf_dir=ROOT / "conf")


@pytest.fixture(scope="session")
def spark(settings):
    from lakeforge.core.spark import get_spark

    session = get_spark(settings)
    yield session
    session.stop()
