"""The EDA profile (lakeforge profile): exact numbers on small inline data, the Telco report with
its churn rate by Contract and the tenure/TotalCharges correlation rendered in a real headless
browser (Chromium) with a screenshot, per-pipeline Delta tables, MLflow artifacts, and bad input
(missing / empty / one-class target) that fails with the column's name."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from conftest import TELCO_CSV, write_pipeline
from lakeforge.core import tracking
from lakeforge.app.cli import main
from lakeforge.core.config import load_pipeline
from lakeforge.core.errors import InputDataError, MissingColumnError
from lakeforge.core.frames import local_frame
from lakeforge.profiling.eda import ProfileSpec, eda_profile
from lakeforge.profiling.job import CORRELATIONS_TABLE, COLUMNS_TABLE, run_profile
from lakeforge.profiling.page import profile_report

SCHEMA = "id string, x double, s string, c string, y string"
# x: 1..9 and 100 (an outlier) and one null; s: numbers as text, one blank; c: levels a/b/c and a null
ROWS = [
    ("k01", 1.0, "10", "a", "yes"),
    ("k02", 2.0, "20", "a", "no"),
    ("k03", 3.0, " ", "a", "yes"),
    ("k04", 4.0, "40", "b", "no"),
    ("k05", 5.0, "50", "b", "no"),
    ("k06", 6.0, "60", "b", "yes"),
    ("k07", 7.0, "70", "c", "no"),
    ("k08", 8.0, "80", "c", "no"),
    ("k09", 9.0, "90", None, "no"),
    ("k10", 100.0, "100", "a", "yes"),
    ("k11", None, "110", "a", "no"),
]


@pytest.fixture(scope="module")
def small(spark):
    """The inline rows profiled with no role given: lakeforge frame's detector decides them."""
    return eda_profile(local_frame(spark, ROWS, SCHEMA), ProfileSpec("y", "id"))


def _pandas():
    p = pd.DataFrame(ROWS, columns=["id", "x", "s", "c", "y"])
    p["s"] = pd.to_numeric(p["s"], errors="coerce")  # the blank becomes NaN
    return p


def test_roles_come_from_frame_and_text_numbers_are_numbers(small):
    roles = {c.name: c.role for c in small.columns}
    assert roles == {"id": "key", "x": "numeric", "s": "numeric", "c": "categorical", "y": "target"}
    assert "of the non-blank values are numbers" in small.column("s").reason
    assert small.passes == 3


def test_numeric_statistics_are_exact(small):
    x = small.column("x")
    assert (x.count, x.missing, x.distinct) == (10, 1, 10)
    assert x.mean == pytest.approx(14.5)
    assert x.std == pytest.approx(_pandas()["x"].std())
    assert x.skew == pytest.approx(_pandas()["x"].skew())  # adjusted Fisher-Pearson, as pandas
    assert (x.min, x.max) == (1.0, 100.0)
    # approximate percentiles are values of the data: the smallest v with CDF(v) >= p
    assert (x.q1, x.median, x.q3) == (3.0, 5.0, 8.0)
    # IQR 5: fences -4.5 and 15.5, so 100 is the one outlier
    assert (x.iqr_low, x.iqr_high, x.outliers_low, x.outliers_high) == (-4.5, 15.5, 0, 1)
    # 20 equal-width bins from 1 to 100 (width 4.95): 1..5, 6..9, then 100 alone in the last
    assert [n for _, _, n in x.histogram] == [5, 4] + [0] * 17 + [1]
    s = small.column("s")
    assert (s.count, s.missing, s.unparsed) == (10, 1, 0)  # the blank is missing
    assert s.mean == pytest.approx(63.0)
    assert sorted(s.top) == sorted((str(v), 1) for v in (10, 20, 40, 50, 60, 70, 80, 90, 100, 110))


def test_top_values_and_churn_rate_per_category(small):
    c = small.column("c")
    assert (c.count, c.missing, c.distinct) == (10, 1, 3)
    assert c.top == [("a", 5), ("b", 3), ("c", 2)]
    rates = {r["label"]: (r["rows"], r["rate"]) for r in c.by_target}
    assert rates == {"a": (5, pytest.approx(3 / 5)), "b": (3, pytest.approx(1 / 3)), "c": (2, 0.0), "(missing)": (1, 0.0)}
    t = small.target
    assert (t.task, t.positive_class, t.classes, t.rate_name) == ("binary", "yes", [("no", 7), ("yes", 4)], "y rate")


def test_correlations_match_pandas(small):
    p = _pandas()
    assert small.correlation("x", "s") == pytest.approx(p["x"].corr(p["s"]), abs=1e-12)  # pairwise complete rows
    assert small.pearson.loc["x", "s"] == pytest.approx(p["x"].corr(p["s"]), abs=1e-12)
    # Fewer distinct values than percentile buckets: the approximate ranks are the exact mid-ranks
    # of each column's own values, correlated over the pairwise complete rows (pandas re-ranks
    # those rows only, hence the small difference when the columns miss different rows).
    assert small.correlation("x", "s", "spearman") == pytest.approx(p["x"].rank().corr(p["s"].rank()), abs=1e-9)
    assert small.correlation("x", "s", "spearman") == pytest.approx(p["x"].corr(p["s"], method="spearman"), abs=0.01)
    y = (p["y"] == "yes").astype(float)
    assert small.column("x").target_pearson == pytest.approx(p["x"].corr(y), abs=1e-12)
    assert [(r["column_a"], r["column_b"], r["method"]) for r in small.flagged] == [("x", "s", "spearman")]


def test_leakage_suspects(spark):
    rows = []
    for i in range(60):
        label = "yes" if i % 3 == 0 else "no"
        status = f"closed{i % 2}" if label == "yes" else f"open{i % 4}"  # decided by the label
        rows.append((f"id{i}", float(i % 7), ["n", "s", "e"][(i // 2) % 3], status, i * 10.0 + (1000 if label == "yes" else 0),
                     label, label))
    df = local_frame(spark, rows, "id string, a double, region string, status string, score double, label_copy string, label string")
    res = eda_profile(df, ProfileSpec("label", "id", numeric=["a", "score"], categorical=["region", "status", "label_copy"]))
    suspects = {x["column"]: x["reason"] for x in res.leakage}
    assert set(suspects) == {"status", "score", "label_copy"}, suspects
    assert "lambda 1.000" in suspects["status"]
    assert "binned ROC-AUC 0.99" in suspects["score"]
    assert suspects["label_copy"] == "its name contains the target's"
    assert res.column("region").leakage is None


def test_numeric_target_mean_per_bin(spark):
    rows = [(f"r{i}", float(i), "lo" if i < 50 else "hi", 2.0 * i + (i % 3)) for i in range(100)]
    res = eda_profile(local_frame(spark, rows, "id string, x double, g string, price double"),
                      ProfileSpec("price", "id", numeric=["x"], categorical=["g"]))
    assert res.target.task == "regression" and res.target.rate_name == "mean price"
    means = {r["label"]: r["mean"] for r in res.column("g").by_target}
    assert means["lo"] == pytest.approx(sum(2.0 * i + i % 3 for i in range(50)) / 50)
    assert res.column("x").target_pearson == pytest.approx(pd.Series(range(100)).corr(pd.Series([2.0 * i + i % 3 for i in range(100)])))
    assert res.column("g").association_measure == "correlation ratio (eta)"
    assert res.column("price").median is not None  # the target is profiled as a number


def test_missing_target_column_is_named(spark):
    df = local_frame(spark, ROWS, SCHEMA)
    with pytest.raises(MissingColumnError, match="'Churn'"):
        eda_profile(df, ProfileSpec("Churn", "id", numeric=["x"]))


def test_empty_target_is_named(spark):
    df = local_frame(spark, [(r[0], r[1], None) for r in ROWS], "id string, x double, y string")
    with pytest.raises(InputDataError, match=r"target column 'y' is empty: all 11 rows are null"):
        eda_profile(df, ProfileSpec("y", "id", numeric=["x"]))


def test_one_class_target_is_named(spark):
    df = local_frame(spark, [(r[0], r[1], "no") for r in ROWS], "id string, x double, y string")
    with pytest.raises(InputDataError, match=r"target column 'y' has one value only \('no' in all 11"):
        eda_profile(df, ProfileSpec("y", "id", numeric=["x"]))


def test_all_null_feature_is_a_warning_naming_it(spark):
    df = local_frame(spark, [(r[0], r[1], None, r[4]) for r in ROWS], "id string, x double, z double, y string")
    res = eda_profile(df, ProfileSpec("y", "id", numeric=["x", "z"]))
    assert "z: all values are missing" in res.warnings
    assert (res.column("z").count, res.column("z").missing) == (0, 11)
    assert "z: all values are missing" in profile_report(res, "t", "inline rows", "now").html


def test_report_is_self_contained(small):
    page = profile_report(small, "small", "inline rows", "now").html
    assert "<script" not in page and 'src="http' not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') >= 4
    assert "Y rate by c" in page


# ---------------------------------------------------------------------------------------------
# Telco: the whole job, the tables, MLflow, and the report in a real browser
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def telco(spark, settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile-telco")
    # a bronze table that does not exist: the job reads the CSV source
    pipe = load_pipeline(write_pipeline(folder, name="telco_profile", **{"tables.bronze": "bronze_telco_profile"}))
    return pipe, run_profile(spark, settings, pipe, "telco-run-1")


@pytest.mark.slow
def test_telco_churn_rate_by_contract_and_correlations(telco, spark, settings):
    pipe, res = telco
    r = res.result
    assert r.rows == 7043 and r.passes == 3 and str(TELCO_CSV.name) in res.source
    rates = {x["label"]: x["rate"] for x in r.column("Contract").by_target}
    assert rates == {"Month-to-month": pytest.approx(0.427, abs=5e-4), "One year": pytest.approx(0.113, abs=5e-4),
                     "Two year": pytest.approx(0.028, abs=5e-4)}
    assert r.correlation("tenure", "TotalCharges") == pytest.approx(0.826, abs=1e-3)
    assert r.correlation("tenure", "TotalCharges", "spearman") == pytest.approx(0.889, abs=5e-3)
    assert ("tenure", "TotalCharges", "pearson") in {(x["column_a"], x["column_b"], x["method"]) for x in r.flagged}
    total = r.column("TotalCharges")
    assert (total.role, total.missing, total.count) == ("numeric", 11, 7032)  # blanks of new customers
    assert r.leakage == []

    page = open(res.report_path, encoding="utf-8").read()
    assert "Churn rate by Contract" in page
    for label, rate in (("Month-to-month", "0.427"), ("One year", "0.113"), ("Two year", "0.028")):
        assert f"<td>{label}</td><td>" in page and f"<td>{rate} (" in page
    assert "<td>tenure</td><td>TotalCharges</td><td>pearson</td><td>0.826</td>" in page  # the flagged pairs table
    assert "<script" not in page and 'src="http' not in page

    cols = spark.table(settings.table(COLUMNS_TABLE)).where("pipeline = 'telco_profile'")
    assert cols.count() == 21
    row = cols.where("`column` = 'TotalCharges'").first()
    assert (row["missing"], row["role"]) == (11, "numeric") and row["mean"] == pytest.approx(2283.30, abs=0.01)
    corr = spark.table(settings.table(CORRELATIONS_TABLE)).where(
        "pipeline = 'telco_profile' AND method = 'pearson' AND column_a = 'tenure' AND column_b = 'TotalCharges'").first()
    assert corr["value"] == pytest.approx(0.826, abs=1e-3) and corr["flagged"]

    tracking.configure(settings)
    names = {a.path for a in MlflowClient().list_artifacts(res.mlflow_run_id, "profile")}
    assert names == {"profile/profile.html", "profile/profile.json"}


@pytest.mark.slow
def test_telco_report_renders_in_headless_chromium(telco, tmp_path, tmp_path_factory):
    from PIL import Image

    _, res = telco
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: run scripts/system_packages.sh (scripts/test.sh does)"
    shot = tmp_path / "profile_telco.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}",
           f"--screenshot={shot}", "--window-size=1400,4000", f"file://{res.report_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert shot.stat().st_size > 50_000
    img = Image.open(shot).convert("RGB")
    assert img.size == (1400, 4000)
    small = img.resize((350, 1000))
    colours = small.getcolors(maxcolors=350 * 1000)
    assert len(colours) > 100, "the screenshot is (nearly) one colour"
    white = sum(n for n, rgb in colours if min(rgb) > 245)
    assert white < 0.95 * 350 * 1000, "the screenshot is blank"
    # the heatmaps' dark red (tenure/TotalCharges 0.83) and blue are drawn
    assert any(r > 150 and g < 60 and b < 60 for _, (r, g, b) in colours)
    kept = tmp_path_factory.getbasetemp() / "reports" / "screenshots" / "profile_telco.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, kept)


# ---------------------------------------------------------------------------------------------
# Two pipelines share the tables without clobbering each other; the CLI
# ---------------------------------------------------------------------------------------------


def _small_pipeline(folder, name: str, rows: list[tuple]):
    csv = folder / f"{name}.csv"
    csv.write_text("id,x,s,c,y\n" + "\n".join(",".join("" if v is None else str(v) for v in r) for r in rows) + "\n")
    return write_pipeline(folder, name=name, source={"format": "csv", "path": str(csv), "options": {"header": True, "inferSchema": True}},
                          key="id", target="y", positive_class="yes", tables={"bronze": f"bronze_{name}", "predictions": f"p_{name}"},
                          features={"numeric": ["x", "s"], "categorical": ["c"]})


def test_two_pipelines_keep_their_rows_and_the_cli_rerun_replaces(spark, settings, overlay, tmp_path, capsys):
    a_file = _small_pipeline(tmp_path, "prof_a", ROWS)
    b = load_pipeline(_small_pipeline(tmp_path, "prof_b", ROWS[:8]))
    table = settings.table(COLUMNS_TABLE)

    def runs():
        rows = spark.table(table).where("pipeline IN ('prof_a', 'prof_b')").groupBy("pipeline", "run_id").count().collect()
        return {r["pipeline"]: (r["run_id"], r["count"]) for r in rows}

    first = run_profile(spark, settings, load_pipeline(a_file), "a1")
    run_profile(spark, settings, b, "b1")
    assert runs() == {"prof_a": ("a1", 5), "prof_b": ("b1", 5)}

    # the command line reruns prof_a: its rows are replaced, prof_b's stay
    assert main(["--conf", str(overlay), "profile", str(a_file)]) == 0
    out = capsys.readouterr().out
    assert "11 rows x 5 columns in 3 passes over the data" in out
    assert "Flagged pairs (|value| >= 0.8): 1: x / s (spearman 0.995)" in out and "Leakage suspects: none" in out
    assert "prof_a/profile.html" in out and "lakeforge.profile_columns (version" in out
    after = runs()
    assert after["prof_b"] == ("b1", 5) and after["prof_a"][1] == 5 and after["prof_a"][0] != "a1"
    assert spark.table(settings.table(CORRELATIONS_TABLE)).where("pipeline = 'prof_b'").count() > 0
    assert spark.sql(f"DESCRIBE HISTORY {table}").where("version > 0").count() >= 2  # one commit per run
    assert first.tables[table] >= 1

    # a target the data lacks: one clear error line naming it, exit code 2
    bad = yaml.safe_load(a_file.read_text())
    bad["target"] = "Churn"
    a_file.write_text(yaml.safe_dump(bad))
    assert main(["--conf", str(overlay), "profile", str(a_file)]) == 2
    assert "'Churn' not found" in capsys.readouterr().err
