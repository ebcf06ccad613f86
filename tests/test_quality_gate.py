"""A load whose error-severity data-quality checks fail is committed to bronze, but training and
scoring do not read that version unless told to (--allow-failed-checks): they read the last
version that passed, saying so in one line, or refuse in one line when there is none. The load's
ingest_runs status (failed_checks) agrees with job_runs (failed). Scoring also refuses when a
model input column turns null (a renamed column under schema_evolution).

The rules on recorded loads (lakeforge.ingest.gate) are tested on inline values; the commands
end to end in this process (lakeforge.app.cli.main, its output read with capsys) on the first
1,000 Telco customers with a one-candidate search."""

import datetime as dt
import json

import pytest

from conftest import TELCO_CSV, telco_slice, write_pipeline
from lakeforge.app.cli import main
from lakeforge.core.errors import InputDataError
from lakeforge.core.frames import local_frame
from lakeforge.ingest.gate import Choice, Load, choose, failed_rows

D = dt.date(2026, 1, 1)
D2 = dt.date(2026, 1, 2)


def _load(version, passed=True, mode="overwrite", run_date=D, files=()):
    return Load(version, f"r{version}", run_date, mode, frozenset(files), passed)


# ---------------------------------------------------------------------------------------------
# The rules (pure)
# ---------------------------------------------------------------------------------------------


def test_a_clean_latest_version_is_read_without_a_word():
    assert choose([_load(1), _load(2)], 3, "t", "training") == Choice(3)  # version 3: e.g. an OPTIMIZE
    assert choose([], 7, "t", "scoring") == Choice(7)  # a table no lakeforge load wrote


def test_overwrite_the_last_version_that_passed_is_read_and_said():
    loads = [_load(1), _load(2, passed=False)]
    assert choose(loads, 2, "lakeforge.b", "training") == Choice(1, (
        "lakeforge.b version 2 holds rows that failed error checks (load of 2026-01-01; dq_results): training uses "
        "version 1, the last that passed (--allow-failed-checks overrides)"))
    assert choose(loads, 2, "lakeforge.b", "scoring", allow_failed_checks=True) == Choice(2, (
        "lakeforge.b version 2 holds rows that failed error checks (load of 2026-01-01; dq_results): scoring uses it "
        "anyway (--allow-failed-checks)"))
    # a later load that passed replaces the whole table: clean again
    assert choose([*loads, _load(4)], 5, "t", "training") == Choice(5)
    # and the version before the next failure is the one read then
    assert choose([*loads, _load(4), _load(6, passed=False)], 6, "t", "training").version == 5
    # an older version is what the latest was then: the gate looks at versions up to it
    assert choose(loads, 1, "t", "training") == Choice(1)


def test_no_version_that_passed_is_refused_in_one_line():
    # the first load failed (version 0 is the empty table it created)
    with pytest.raises(InputDataError) as exc:
        choose([_load(1, passed=False)], 1, "lakeforge.b", "scoring")
    assert str(exc.value) == (
        "lakeforge.b version 1 holds rows that failed error checks (load of 2026-01-01; dq_results) and no earlier "
        "version passed: no scoring. Fix the source and ingest again, or rerun with --allow-failed-checks")
    assert choose([_load(1, passed=False)], 1, "t", "scoring", allow_failed_checks=True).version == 1


def test_append_rows_of_a_failed_date_stay_until_that_date_is_loaded_again():
    loads = [_load(1, mode="append", run_date=D), _load(2, passed=False, mode="append", run_date=D2),
             _load(3, mode="append", run_date=dt.date(2026, 1, 3))]
    failed, clean = failed_rows(loads, 3)
    assert ([f.version for f in failed], clean) == ([2], 1)  # version 3 still has the rows of 2026-01-02
    note = choose(loads, 3, "t", "training").note
    assert "load of 2026-01-02" in note and "uses version 1" in note
    assert choose([*loads, _load(4, mode="append", run_date=D2)], 4, "t", "training") == Choice(4)  # date reloaded


def test_incremental_rows_of_failed_files_stay_until_those_files_load_again():
    loads = [_load(1, mode="incremental", files=["a"]), _load(2, passed=False, mode="incremental", files=["b", "c"]),
             _load(3, passed=False, mode="incremental", files=["d"])]
    assert choose(loads, 3, "t", "training").note.startswith(
        "t version 3 holds rows that failed error checks (load of 2026-01-01 and 1 earlier load(s); dq_results)")
    partly = [*loads, _load(4, mode="incremental", files=["b", "d"])]
    assert [f.version for f in failed_rows(partly, 4)[0]] == [2]  # file c's rows are still there
    assert choose([*partly, _load(5, mode="incremental", files=["c"])], 5, "t", "training") == Choice(5)
    # a JDBC incremental load (no files) appends: it replaces nothing
    assert failed_rows([*loads, _load(4, mode="incremental")], 4)[1] == 1


# ---------------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------------

TABLES = {"tables.bronze": "qg_bronze", "tables.predictions": "qg_predictions", "tables.leaderboard": "qg_leaderboard",
          "model.registered_name": "qg_model", "model.algorithms": {"logistic_regression": {"regParam": [0.01]}},
          "model.folds": 2}
FAILING = [{"type": "range", "column": "tenure", "max": 10}]  # most Telco customers stayed longer
ROWS = 1000


def _lf(overlay, capsys, *args) -> tuple[int, list[str]]:
    code = main(["--conf", str(overlay), *args])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


def _lines(lines, *parts) -> list[str]:
    return [line for line in lines if all(p in line for p in parts)]


def _job_run(spark, job, run_date, table="lakeforge.qg_bronze"):
    rows = spark.sql(f"SELECT * FROM lakeforge.job_runs WHERE job = '{job}' AND run_date = DATE'{run_date}' "
                     f"AND pipeline = 'telco_churn' ORDER BY finished_at").collect()
    return [r for r in rows if r.input_table in (None, table)][-1]


@pytest.fixture(scope="module")
def gated(spark, overlay, tmp_path_factory):
    """The Telco data loaded (checks passed) and a model trained on it."""
    folder = tmp_path_factory.mktemp("gate")
    data = {"source.path": str(telco_slice(folder, ROWS))}
    good = write_pipeline(folder / "good", **TABLES, **data)
    failing = write_pipeline(folder / "failing", **TABLES, **data, **{"source.checks": FAILING})
    assert main(["--conf", str(overlay), "ingest", str(good), "--run-date", "2025-12-31"]) == 0
    assert main(["--conf", str(overlay), "train", str(good), "--run-date", "2025-12-31"]) == 0
    return folder, good, failing


def test_train_and_score_do_not_use_a_version_whose_error_checks_failed(spark, overlay, gated, capsys):
    _, good, failing = gated
    code, lines = _lf(overlay, capsys, "ingest", str(failing), "--run-date", "2026-01-02")
    assert code == 2 and _lines(lines, "error: data-quality check(s) failed on lakeforge.qg_bronze")
    bad = latest = spark.sql("DESCRIBE HISTORY lakeforge.qg_bronze").first().version  # committed, as documented
    # the two records agree
    load = spark.sql("SELECT * FROM lakeforge.ingest_runs WHERE table_name = 'lakeforge.qg_bronze' "
                     "AND run_date = DATE'2026-01-02'").collect()
    job = _job_run(spark, "ingest", "2026-01-02")
    assert [(r.status, r.table_version, r.run_id) for r in load] == [("failed_checks", bad, job.run_id)]
    assert load[0].message.endswith("; error check(s) failed: range(tenure) (dq_results)")
    assert job.status == "failed" and job.message.startswith("data-quality check(s) failed on lakeforge.qg_bronze")

    said = f"lakeforge.qg_bronze version {bad} holds rows that failed error checks (load of 2026-01-02; dq_results)"
    code, lines = _lf(overlay, capsys, "train", str(good), "--run-date", "2026-01-02")
    assert code == 0, lines
    assert len(_lines(lines, said, f"training uses version {bad - 1}, the last that passed")) == 1
    trained = _job_run(spark, "train", "2026-01-02")
    assert (trained.status, trained.input_table, trained.input_version) == ("succeeded", "lakeforge.qg_bronze", bad - 1)
    from mlflow import MlflowClient
    client = MlflowClient()
    run = client.get_run(client.get_model_version("qg_model", trained.model_version).run_id)
    assert run.data.tags["data.table_version"] == str(bad - 1)

    code, lines = _lf(overlay, capsys, "score", str(good), "--run-date", "2026-01-02")
    assert code == 0, lines
    assert len(_lines(lines, said, f"scoring uses version {bad - 1}, the last that passed")) == 1
    assert _job_run(spark, "score", "2026-01-02").input_version == bad - 1

    # the override: the latest version, said too
    code, lines = _lf(overlay, capsys, "score", str(good), "--run-date", "2026-01-03", "--allow-failed-checks")
    assert code == 0 and len(_lines(lines, said, "scoring uses it anyway (--allow-failed-checks)")) == 1
    assert _job_run(spark, "score", "2026-01-03").input_version == latest
    assert spark.sql("SELECT count(*) FROM lakeforge.qg_predictions WHERE run_date = DATE'2026-01-03'").first()[0] == ROWS


def test_run_goes_on_past_failed_checks_only_when_allowed(spark, overlay, gated, capsys):
    _, _, failing = gated
    code, lines = _lf(overlay, capsys, "run", str(failing), "--run-date", "2026-01-04")
    assert code == 2 and not _lines(lines, ">> train")
    code, lines = _lf(overlay, capsys, "run", str(failing), "--run-date", "2026-01-05", "--allow-failed-checks")
    assert code == 0, lines
    assert len(_lines(lines, "warning: data-quality check(s) failed on lakeforge.qg_bronze", "Going on")) == 1
    version = spark.sql("DESCRIBE HISTORY lakeforge.qg_bronze").first().version
    assert _lines(lines, f"lakeforge.qg_bronze version {version} holds rows that failed", "training uses it anyway")
    load = spark.sql("SELECT status FROM lakeforge.ingest_runs WHERE table_name = 'lakeforge.qg_bronze' "
                     "AND run_date = DATE'2026-01-05'").first()
    runs = {job: _job_run(spark, job, "2026-01-05") for job in ("ingest", "train", "score")}
    assert load.status == "failed_checks" and runs["ingest"].status == "failed"
    assert [(runs[j].status, runs[j].input_version) for j in ("train", "score")] == [("succeeded", version)] * 2


def test_no_version_that_passed_refuses_train_and_score_in_one_line(spark, overlay, gated, capsys):
    folder, _, _ = gated
    first_bad = write_pipeline(folder / "first_bad", **{**TABLES, "tables.bronze": "qg_first_bad",
                                                        "tables.predictions": "qg_first_bad_predictions"},
                               **{"source.checks": FAILING, "source.path": str(folder / f"telco_{ROWS}.csv")})
    assert _lf(overlay, capsys, "ingest", str(first_bad), "--run-date", "2026-01-06")[0] == 2
    for job, stage in (("train", "training"), ("score", "scoring")):
        code, lines = _lf(overlay, capsys, job, str(first_bad), "--run-date", "2026-01-06")
        assert code == 2
        assert lines[-1] == (f"error: lakeforge.qg_first_bad version 1 holds rows that failed error checks (load of "
                             f"2026-01-06; dq_results) and no earlier version passed: no {stage}. Fix the source and "
                             "ingest again, or rerun with --allow-failed-checks")
    assert not spark.catalog.tableExists("lakeforge.qg_first_bad_predictions")


def test_loads_recorded_before_failed_checks_had_a_status_are_read_from_dq_results(spark, settings):
    from lakeforge.ingest.job import INGEST_RUNS_SCHEMA, INGEST_RUNS_TABLE, load_history
    from lakeforge.ingest.quality import DQ_SCHEMA, DQ_TABLE

    local_frame(spark, [(1,)], "id int").write.format("delta").saveAsTable("lakeforge.qg_legacy")
    now = dt.datetime.now()
    runs = [(f"legacy{v}", D, "p", "main", "x.csv", "lakeforge.qg_legacy", "overwrite", "succeeded", 1, 1, 0, 0, 0, v,
             ["x.csv"], "{}", "[]", None, now, now) for v in (1, 2)]
    local_frame(spark, runs, INGEST_RUNS_SCHEMA).write.format("delta").mode("append").saveAsTable(
        settings.table(INGEST_RUNS_TABLE))
    dq = [("legacy2", D, "p", "lakeforge.qg_legacy", "range(x)", "range", "x", "error", False, 1, 1, "", now),
          ("legacy1", D, "p", "lakeforge.qg_legacy", "range(x)", "range", "x", "warn", False, 1, 1, "", now)]
    local_frame(spark, dq, DQ_SCHEMA).write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(
        settings.table(DQ_TABLE))
    assert sorted(load_history(spark, settings, "lakeforge.qg_legacy"), key=lambda ld: ld.version) == [
        Load(1, "legacy1", D, "overwrite", frozenset(["x.csv"]), True),
        Load(2, "legacy2", D, "overwrite", frozenset(["x.csv"]), False)]


def test_scoring_refuses_a_model_input_that_became_null(spark, overlay, gated, capsys, tmp_path):
    """The finding: a renamed column under schema_evolution left tenure null in every row, and
    scoring wrote predictions without a word."""
    folder, _, _ = gated
    from mlflow import MlflowClient

    # training kept its null share per input column with the model version
    shares = json.loads(MlflowClient().get_model_version("qg_model", "1").tags["lakeforge.input_null_shares"])
    assert len(shares) == 19 and shares["tenure"] == 0.0 and 0 < shares["TotalCharges"] < 0.01  # 11 blanks
    renamed = tmp_path / "renamed.csv"
    header, rest = TELCO_CSV.read_text().split("\n", 1)
    renamed.write_text(header.replace(",tenure,", ",tenure_months,") + "\n" + rest)
    evolve = {**TABLES, "tables.bronze": "qg_evolve", "tables.predictions": "qg_evolve_predictions"}
    original = write_pipeline(folder / "evolve0", **evolve)
    assert _lf(overlay, capsys, "ingest", str(original), "--run-date", "2026-01-07")[0] == 0
    changed = write_pipeline(folder / "evolve1", **evolve, **{"source.path": str(renamed), "source.schema_evolution": True})
    code, lines = _lf(overlay, capsys, "ingest", str(changed), "--run-date", "2026-01-07")
    assert code == 0 and _lines(lines, "schema change accepted", "tenure_months")
    version = spark.sql("DESCRIBE HISTORY lakeforge.qg_evolve").first().version

    code, lines = _lf(overlay, capsys, "score", str(changed), "--run-date", "2026-01-07")
    assert code == 2
    assert lines[-1] == (
        f"error: input table lakeforge.qg_evolve version {version}: model input column(s) null in all 7,043 rows to "
        "score: tenure (training: 0.0%) (model qg_model version 1; a renamed or missing source column?); nothing was "
        "written (scoring.on_null_inputs: warn scores anyway)")
    assert not spark.catalog.tableExists("lakeforge.qg_evolve_predictions")

    warn = write_pipeline(folder / "evolve2", **evolve, **{"source.path": str(renamed), "source.schema_evolution": True,
                                                           "scoring.on_null_inputs": "warn"})
    code, lines = _lf(overlay, capsys, "score", str(warn), "--run-date", "2026-01-07")
    assert code == 0
    assert len(_lines(lines, "warning: input table lakeforge.qg_evolve", "tenure", "scored anyway")) == 1
    assert spark.table("lakeforge.qg_evolve_predictions").count() == 7043
