"""Scheduled-run behaviour: locks, backfill ranges, run records, alias resolution, maintenance."""

import datetime as dt
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lakeforge.core import tracking
from lakeforge.app.cli import cli
from lakeforge.app.runner import UsageProblem, dates
from lakeforge.core.config import load_pipeline
from lakeforge.core.runs import JobLockedError, job_lock

from conftest import ROOT, run_lakeforge, telco_slice, write_pipeline


def test_dates_single_range_and_errors():
    assert dates(dt.date(2026, 1, 5), None, None) == [dt.date(2026, 1, 5)]
    assert dates(None, dt.date(2026, 1, 30), dt.date(2026, 2, 1)) == [
        dt.date(2026, 1, 30), dt.date(2026, 1, 31), dt.date(2026, 2, 1)]
    assert dates(None, None, None) == [dt.date.today()]
    with pytest.raises(UsageProblem, match="needs both --from and --to"):
        dates(None, dt.date(2026, 1, 1), None)
    with pytest.raises(UsageProblem, match="before --from"):
        dates(None, dt.date(2026, 1, 2), dt.date(2026, 1, 1))
    with pytest.raises(UsageProblem, match="not both"):
        dates(dt.date(2026, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 2))


def test_a_bad_date_range_is_a_usage_error_on_the_command_line():
    result = CliRunner().invoke(cli, ["score", "x.yaml", "--from", "2026-01-02", "--to", "2026-01-01"])
    assert result.exit_code == 2 and "--to 2026-01-01 is before --from 2026-01-02" in result.output


def test_lock_refuses_a_second_run_of_the_same_job_and_pipeline(settings, overlay, tmp_path):
    pipeline = write_pipeline(tmp_path)
    with job_lock(settings, "score", "telco_churn"):
        with pytest.raises(JobLockedError, match=r"another 'score' run of pipeline telco_churn is still running \(pid \d+"):
            with job_lock(settings, "score", "telco_churn"):
                pass
        with job_lock(settings, "ingest", "telco_churn"):  # another job: allowed
            pass
        # the real command, in another process, exits with one line
        proc = run_lakeforge("--conf", str(overlay), "score", str(pipeline), "--run-date", "2026-01-01")
        assert proc.returncode == 2, proc.stderr
        assert "refusing to start" in proc.stderr and "Traceback" not in proc.stderr


def test_lock_of_a_killed_process_is_released(settings):
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from lakeforge.core.settings import load_settings\n"
        "from lakeforge.core.runs import job_lock\n"
        "s = load_settings(overlays=[%r], conf_dir=__import__('pathlib').Path(%r))\n"
        "with job_lock(s, 'train', 'p'):\n    print('locked', flush=True); time.sleep(60)\n"
    ) % (str(ROOT / "lib"), settings.sources[-1], str(ROOT / "conf"))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(JobLockedError):
            with job_lock(settings, "train", "p"):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        with job_lock(settings, "train", "p"):  # a crashed run does not leave it stuck
            pass
    finally:
        if holder.poll() is None:
            holder.kill()


ROWS = 1000  # the first Telco customers (the subject is the scheduling, not the data)


@pytest.fixture(scope="module")
def trained(spark, settings, overlay, tmp_path_factory):
    """The Telco pipeline on its first 1,000 customers, ingested and trained once (small grid) in
    the session warehouse."""
    folder = tmp_path_factory.mktemp("sched")
    path = write_pipeline(
        folder, **{"source.path": str(telco_slice(folder, ROWS)), "tables.bronze": "s_bronze",
                   "tables.predictions": "s_predictions", "tables.leaderboard": "s_leaderboard", "model.registered_name": "sched_model",
                   "model.algorithms": {"logistic_regression": {"regParam": [0.01]}}, "model.folds": 2}
    )
    result = CliRunner().invoke(cli, ["--conf", str(overlay), "run", str(path), "--run-date", "2026-02-01"])
    assert result.exit_code == 0, result.output
    return path, load_pipeline(path)


def _invoke(overlay, *args):
    from lakeforge.app.cli import main
    return main(["--conf", str(overlay), *args])


def test_backfill_range_scores_each_date_once_with_one_model_version(spark, overlay, trained):
    path, pipeline = trained
    assert _invoke(overlay, "score", str(path), "--from", "2026-01-01", "--to", "2026-01-03") == 0
    assert _invoke(overlay, "score", str(path), "--run-date", "2026-01-02") == 0  # rerun of one date
    rows = spark.sql(
        "SELECT run_date, model_version, count(*) AS n, count(DISTINCT customerID) AS keys "
        "FROM lakeforge.s_predictions GROUP BY ALL ORDER BY run_date").collect()
    assert [(str(r.run_date), r.model_version, r.n, r.keys) for r in rows] == [
        ("2026-01-01", "1", ROWS, ROWS), ("2026-01-02", "1", ROWS, ROWS),
        ("2026-01-03", "1", ROWS, ROWS), ("2026-02-01", "1", ROWS, ROWS)]
    # the version's PipelineModel was loaded once in this process for the four dates
    from lakeforge.core import tracking
    ref = tracking.ModelRef("sched_model", "1")
    loaded = tracking.load_spark_model(ref)
    assert tracking.load_spark_model(ref) is loaded and loaded.stages
    assert sum(key[2:4] == ("sched_model", "1") for key in tracking._LOADED) == 1


def test_job_runs_records_successes_and_failures(spark, overlay, trained, tmp_path):
    path, _ = trained
    assert _invoke(overlay, "score", str(path), "--run-date", "2026-03-01") == 0
    broken = write_pipeline(tmp_path, **{"tables.bronze": "s_bronze", "tables.predictions": "s_predictions",
                                         "model.registered_name": "sched_model",
                                         "scoring.input_table": "no_such_table"})
    assert _invoke(overlay, "score", str(broken), "--run-date", "2026-03-02") == 2
    # the latest run per date: other files on this worker share the session's job_runs and dates
    rows = {str(r.run_date): r for r in spark.sql(
        "SELECT * FROM lakeforge.job_runs WHERE job = 'score' AND run_date >= DATE'2026-03-01' ORDER BY started_at").collect()}
    ok, failed = rows["2026-03-01"], rows["2026-03-02"]
    assert (ok.status, ok.rows_in, ok.rows_out, ok.model_name, ok.model_version) == ("succeeded", ROWS, ROWS, "sched_model", "1")
    assert ok.duration_s == (ok.finished_at - ok.started_at).total_seconds() and ok.message is None
    assert failed.status == "failed"
    assert "lakeforge.no_such_table does not exist" in failed.message


def test_alias_moved_during_a_run_does_not_change_the_version_used(spark, settings, overlay, trained, monkeypatch):
    """The alias is resolved once at the start; moving it mid-run must not mix versions."""
    path, pipeline = trained
    import lakeforge.scoring.job as score_mod
    from lakeforge.app.cli import main

    tracking.configure(settings)
    # register a second version of the same model so the alias has somewhere to move
    client = tracking.MlflowClient()
    v1 = client.get_model_version("sched_model", "1")
    v2 = client.create_model_version("sched_model", v1.source, run_id=v1.run_id)
    real_load = score_mod.load_model

    def load_then_move_alias(ref):
        model = real_load(ref)
        tracking.set_alias("sched_model", "champion", str(v2.version))  # someone promotes meanwhile
        return model

    monkeypatch.setattr(score_mod, "load_model", load_then_move_alias)
    try:
        assert main(["--conf", str(overlay), "score", str(path), "--from", "2026-04-01", "--to", "2026-04-02"]) == 0
    finally:
        tracking.set_alias("sched_model", "champion", "1")
    versions = spark.sql("SELECT DISTINCT model_version FROM lakeforge.s_predictions "
                         "WHERE run_date IN (DATE'2026-04-01', DATE'2026-04-02')").collect()
    assert [r.model_version for r in versions] == ["1"]


def test_missing_feature_column_fails_before_any_write(spark, settings, overlay, trained, tmp_path):
    path, _ = trained
    spark.table("lakeforge.s_bronze").drop("Contract", "tenure").write.format("delta").saveAsTable("lakeforge.s_no_contract")
    before = spark.sql("DESCRIBE HISTORY lakeforge.s_predictions").count()
    bad = write_pipeline(tmp_path, **{"tables.bronze": "s_bronze", "tables.predictions": "s_predictions",
                                      "model.registered_name": "sched_model", "scoring.input_table": "s_no_contract"})
    from lakeforge.core.errors import InputDataError
    from lakeforge.scoring.job import score
    with pytest.raises(InputDataError, match=r"lacks column\(s\) \['tenure', 'Contract'\] that model sched_model version 1 needs"):
        score(spark, settings, load_pipeline(bad), dt.date(2026, 5, 1))
    assert spark.sql("DESCRIBE HISTORY lakeforge.s_predictions").count() == before


def test_maintain_compacts_and_keeps_data(spark, overlay, trained):
    path, _ = trained
    # job_runs gets one small file per record: something to compact
    files_before = spark.sql("DESCRIBE DETAIL lakeforge.job_runs").first()["numFiles"]
    rows_before = spark.table("lakeforge.job_runs").count()
    assert files_before > 1
    result = CliRunner().invoke(cli, ["--conf", str(overlay), "maintain", str(path)])
    assert result.exit_code == 0, result.output
    assert "lakeforge.s_predictions" in result.output and "interval 7 days (default)" in result.output
    assert "lakeforge.ingest_runs" in result.output  # the load records are maintained too
    ops = [r.operation for r in spark.sql("DESCRIBE HISTORY lakeforge.job_runs").collect()]
    assert "OPTIMIZE" in ops and "VACUUM END" in ops
    assert spark.sql("DESCRIBE DETAIL lakeforge.job_runs").first()["numFiles"] == 1
    assert spark.table("lakeforge.job_runs").count() == rows_before


def test_passthrough_columns_are_kept_in_the_predictions(spark, settings, trained, tmp_path):
    _, pipeline = trained
    from chispa import assert_df_equality

    from lakeforge.scoring.job import score

    cfg = pipeline.model_copy(update={
        "tables": pipeline.tables.model_copy(update={"predictions": "s_predictions_pass"}),
        "scoring": pipeline.scoring.model_copy(update={"passthrough": ["Contract", "tenure"]}),
    })
    score(spark, settings, cfg, dt.date(2026, 6, 1))
    out = spark.table("lakeforge.s_predictions_pass")
    assert out.columns == ["customerID", "Contract", "tenure", "score", "predicted_label", "model_name",
                           "model_version", "scored_at", "run_date"]
    assert_df_equality(
        out.select("customerID", "Contract", "tenure"),
        spark.table("lakeforge.s_bronze").select("customerID", "Contract", "tenure"),
        ignore_row_order=True, ignore_nullable=True,
    )


def test_incremental_scoring_scores_only_new_or_changed_rows(spark, overlay, trained, tmp_path):
    from lakeforge.app.cli import main

    spark.table("lakeforge.s_bronze").write.format("delta").saveAsTable("lakeforge.s_inc")
    path = write_pipeline(tmp_path, **{
        "tables.bronze": "s_bronze", "tables.predictions": "s_pred_inc", "model.registered_name": "sched_model",
        "scoring.input_table": "s_inc", "scoring.mode": "incremental",
    })

    def score(date, *extra):
        assert main(["--conf", str(overlay), "score", str(path), "--run-date", date, *extra]) == 0
        return {r.customerID for r in spark.sql(
            f"SELECT customerID FROM lakeforge.s_pred_inc WHERE run_date = DATE'{date}'").collect()}

    assert len(score("2026-07-01")) == ROWS  # nothing scored before: everything
    changed = ["7590-VHVEG", "5575-GNVDE", "3668-QPYBK"]
    spark.sql(f"UPDATE lakeforge.s_inc SET tenure = tenure + 1 WHERE customerID IN {tuple(changed)}")
    spark.sql("INSERT INTO lakeforge.s_inc SELECT concat(customerID, '-new'), * EXCEPT (customerID) "
              "FROM lakeforge.s_inc WHERE customerID IN ('7795-CFOCW', '9237-HQITU')")
    expected = {*changed, "7795-CFOCW-new", "9237-HQITU-new"}
    assert score("2026-07-02") == expected
    assert score("2026-07-02") == expected  # a rerun of the date compares with the same base
    assert score("2026-07-03") == set()     # nothing changed since
    assert len(score("2026-07-03", "--full")) == ROWS + 2
    versions = spark.sql("SELECT run_date, input_version FROM lakeforge.job_runs WHERE input_table = 'lakeforge.s_inc' "
                         "AND status = 'succeeded' ORDER BY finished_at").collect()
    assert [(str(r.run_date), r.input_version) for r in versions] == [
        ("2026-07-01", 0), ("2026-07-02", 2), ("2026-07-02", 2), ("2026-07-03", 2), ("2026-07-03", 2)]
