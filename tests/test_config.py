"""Settings and pipeline configs: defaults, overlays, and one clear message per mistake."""

from pathlib import Path

import pytest
import yaml

from lakeforge.core.config import load_pipeline
from lakeforge.core.settings import load_settings
from lakeforge.core.errors import ConfigError

from conftest import ROOT, TELCO_PIPELINE


def test_base_settings_are_embedded_defaults():
    s = load_settings(conf_dir=ROOT / "conf")
    assert s.spark.master == "local[*]"
    assert s.warehouse == str(ROOT / "warehouse")
    assert s.tracking_uri == f"sqlite:///{ROOT / 'mlflow' / 'mlflow.db'}"
    assert s.table("predictions_telco") == "lakeforge.predictions_telco"
    assert s.table("other.t") == "other.t"


def test_env_overlay_replaces_only_what_it_names():
    s = load_settings(env="cluster", conf_dir=ROOT / "conf")
    assert s.spark.master == "spark://127.0.0.1:7077"
    assert s.spark.conf["spark.cores.max"] == 2
    # merged key by key: base's conf entries survive next to the overlay's
    assert s.spark.conf["spark.driver.host"] == "127.0.0.1"
    assert s.catalog.database == "lakeforge"


def test_file_overlay_wins_over_env(tmp_path):
    extra = tmp_path / "x.yaml"
    extra.write_text("spark:\n  master: local[1]\n")
    s = load_settings(env="cluster", overlays=[extra], conf_dir=ROOT / "conf")
    assert s.spark.master == "local[1]"


def test_telco_pipeline_is_valid():
    p = load_pipeline(TELCO_PIPELINE)
    assert (p.key, p.target, p.positive_class) == ("customerID", "Churn", "Yes")
    assert "TotalCharges" in p.features.numeric
    assert p.model.task == "binary"
    assert p.model.algorithms["logistic_regression"]["regParam"] == [0.001, 0.01, 0.1]
    assert set(p.model.algorithms) == {"logistic_regression", "random_forest", "gbt"}
    assert len(p.config_hash) == 12


def _pipeline_with(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(TELCO_PIPELINE.read_text())
    mutate(data)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_names_its_path_and_the_allowed_keys(tmp_path):
    path = _pipeline_with(tmp_path, lambda d: d["model"].update(foldz=5))
    with pytest.raises(ConfigError) as exc:
        load_pipeline(path)
    msg = str(exc.value)
    assert f"{path}: model.foldz: unknown key" in msg
    assert "folds" in msg  # the allowed keys are listed


def test_feature_selection_and_model_selection_errors_name_their_own_keys(tmp_path):
    # selection (feature selection) and model.selection (which model wins) are different keys
    path = _pipeline_with(tmp_path, lambda d: d.update(selection={"model": {"method": "lasso", "topp": 3}}))
    with pytest.raises(ConfigError) as exc:
        load_pipeline(path)
    assert f"{path}: selection.model.topp: unknown key" in str(exc.value)
    path = _pipeline_with(tmp_path, lambda d: d["model"].update(selection="best"))
    with pytest.raises(ConfigError, match=r"model\.selection: Input should be 'best_mean' or 'one_standard_error' \(got 'best'\)"):
        load_pipeline(path)


def test_wrong_type_names_key_expected_and_value(tmp_path):
    path = _pipeline_with(tmp_path, lambda d: d["model"].update(folds="three"))
    with pytest.raises(ConfigError, match=r"model\.folds: Input should be a valid integer.*'three'"):
        load_pipeline(path)


def test_out_of_range_value(tmp_path):
    path = _pipeline_with(tmp_path, lambda d: d["model"].update(test_fraction=1.5))
    with pytest.raises(ConfigError, match=r"model\.test_fraction: Input should be less than 1"):
        load_pipeline(path)


def test_unknown_grid_parameter(tmp_path):
    path = _pipeline_with(tmp_path, lambda d: d["model"]["algorithms"]["logistic_regression"].update(regparam=[0.1]))
    with pytest.raises(ConfigError, match=r"model\.algorithms: .*logistic_regression: unknown parameter 'regparam'; allowed: .*regParam"):
        load_pipeline(path)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m["algorithms"].update(lightgbm={}), r"model\.algorithms: .*unknown algorithm 'lightgbm'; available: logistic_regression"),
        (lambda m: m["algorithms"]["random_forest"].update(maxDepth=["deep"]), r"random_forest\.maxDepth: expected an integer, got 'deep'"),
        (lambda m: m["algorithms"]["random_forest"].update(maxDepth=[]), r"random_forest\.maxDepth: expected a non-empty list"),
        (lambda m: m["algorithms"].update(linear_regression={}), r"algorithm 'linear_regression' does not do binary"),
        (lambda m: m.update(metric="rmse"), r"metric 'rmse' does not apply to task 'binary'; use one of roc_auc"),
        (lambda m: m.update(threshold={"strategy": "precision"}), r"threshold\.strategy 'precision' needs threshold\.value"),
    ],
    ids=["unknown-algorithm", "bad-value", "empty-values", "wrong-task", "metric-for-task", "threshold-value"],
)
def test_bad_model_search_config(tmp_path, mutate, expected):
    path = _pipeline_with(tmp_path, lambda d: mutate(d["model"]))
    with pytest.raises(ConfigError, match=expected):
        load_pipeline(path)


def test_missing_required_key(tmp_path):
    path = _pipeline_with(tmp_path, lambda d: d.pop("target"))
    with pytest.raises(ConfigError, match=r"target: required key is missing"):
        load_pipeline(path)


def test_target_cannot_be_a_feature(tmp_path):
    path = _pipeline_with(tmp_path, lambda d: d["features"]["categorical"].append("Churn"))
    with pytest.raises(ConfigError, match=r"target column 'Churn' cannot also be a feature"):
        load_pipeline(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_pipeline(tmp_path / "nope.yaml")


def test_not_yaml_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_pipeline(path)


def test_bad_settings_overlay(tmp_path):
    extra = tmp_path / "bad.yaml"
    extra.write_text("spark:\n  shuffle_partitions: 0\n")
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: Input should be greater than or equal to 1"):
        load_settings(overlays=[extra], conf_dir=ROOT / "conf")


def test_unknown_env(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*conf/nowhere\.yaml"):
        load_settings(env="nowhere", conf_dir=ROOT / "conf")


def test_secrets_come_from_the_environment_not_the_yaml(tmp_path, monkeypatch):
    from lakeforge.core.errors import RuntimeSetupError
    from lakeforge.core.spark import session_conf

    extra = tmp_path / "secret.yaml"
    extra.write_text("spark:\n  conf:\n    spark.hadoop.javax.jdo.option.ConnectionPassword: ${env:LF_TEST_SECRET}\n")
    s = load_settings(overlays=[extra], conf_dir=ROOT / "conf")
    monkeypatch.setenv("LF_TEST_SECRET", "hunter2")
    assert session_conf(s)["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "hunter2"
    # what gets logged (MLflow's settings.json) keeps the placeholder
    assert "hunter2" not in str(s.model_dump(mode="json"))
    monkeypatch.delenv("LF_TEST_SECRET")
    with pytest.raises(RuntimeSetupError, match="environment variable LF_TEST_SECRET is not set"):
        session_conf(s)


def test_a_folder_without_conf_uses_the_installed_projects_settings_and_keeps_its_data_here(tmp_path, monkeypatch):
    from lakeforge.core.spark import jars_folder, session_conf

    monkeypatch.delenv("LAKEFORGE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.root == tmp_path.resolve() and settings.home == ROOT
    assert settings.sources == (str(ROOT / "conf" / "base.yaml"),)
    assert jars_folder(settings) == ROOT / "jars"  # none here: the installed project's
    assert settings.path(settings.catalog.warehouse_dir) == tmp_path.resolve() / "warehouse"
    assert settings.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"
    assert (ROOT / "conf" / "log4j2.properties").as_uri() in session_conf(settings)["spark.driver.extraJavaOptions"]
    # a folder with its own conf/ is a project of its own
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "base.yaml").write_text("spark: {jars_dir: null}\n")
    settings = load_settings()
    assert settings.root == settings.home == tmp_path.resolve() and jars_folder(settings) is None
