"""The monitoring report on realistic data (the README's picture, docs/img/monitor_report.png).

    nice -n 10 .venv/bin/python scripts/demo_monitor_report.py [--days 10] [--screenshot docs/img/monitor_report.png]

In a throwaway warehouse: the Telco data ingested, one logistic regression trained (it stores the
monitoring reference), then ``--days`` daily batches of a tenth of the customers each, scored by
that model: covariate drift from day 6 (MonthlyCharges +30 %, a third of the month-to-month
contracts become two-year), a concept change from day 8 (the month-to-month segment's outcomes
flipped), labels arriving two days late; dataset drift when a tenth of the 21 monitored columns
drift (2 of them are shifted). ``lakeforge monitor`` runs over all days (as cron would after the
last one), the report is written and headless Chromium takes its screenshot. TotalCharges is not
monitored (see pipeline()).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
from pathlib import Path

from benchlib import ROOT, start  # noqa: E402

NAME = "telco_monitor_demo"
DAY0 = dt.date(2026, 6, 1)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=10)
    p.add_argument("--screenshot", default=str(ROOT / "docs" / "img" / "monitor_report.png"))
    p.add_argument("--report", default=None, help="also keep the HTML page here")
    return p.parse_args()


def pipeline(work: Path):
    from conftest import TELCO_PIPELINE, write_pipeline

    from lakeforge.core.config import load_pipeline

    base = load_pipeline(TELCO_PIPELINE).features
    # TotalCharges is text in bronze (blanks for new customers): monitored as a category whose values
    # are almost all unique, it "drifts" in every window; the model parses it, monitoring does not.
    columns = [c for c in [*base.numeric, *base.categorical] if c != "TotalCharges"] + ["score", "predicted_label"]
    return load_pipeline(write_pipeline(work / "conf", name=NAME, **{
        "tables": {"bronze": f"bronze_{NAME}", "predictions": f"predictions_{NAME}"}, "model.registered_name": NAME,
        "model.search": "train_validation_split", "model.max_iter": 30, "source.checks": [],
        "model.algorithms": {"logistic_regression": {"regParam": [0.01], "elasticNetParam": [0.0]}},
        "scoring.input_table": f"inputs_{NAME}",
        "monitoring": {"columns": columns, "min_rows": 300, "dataset_drift_share": 0.1, "performance_lookback_days": 30, "actuals": {"table": f"actuals_{NAME}"}}}))


def simulate(spark, settings, pipe, days: list[dt.date]) -> None:
    """Ingest, train, score each day's batch (recorded in job_runs) and the labels as of the last day."""
    from pyspark.sql import functions as F

    from lakeforge.core.io import write_table
    from lakeforge.core.runs import RunRecord, record_run
    from lakeforge.ingest.job import ingest
    from lakeforge.scoring.job import score
    from lakeforge.training.job import train

    ingest(spark, settings, pipe, "i1", DAY0)
    model = train(spark, settings, pipe, "t1", DAY0).model
    bronze = spark.table(settings.table(pipe.tables.bronze)).withColumn("__slice", F.abs(F.xxhash64("customerID")) % 10)
    labels = None
    for i, day in enumerate(days, start=1):
        rows = bronze.where(F.col("__slice") == (i - 1) % 10).drop("__slice")
        if i >= 6:
            shifted = (F.col("Contract") == "Month-to-month") & (F.abs(F.xxhash64("customerID", F.lit(1))) % 3 == 0)
            rows = (rows.withColumn("MonthlyCharges", F.col("MonthlyCharges") * 1.3)
                    .withColumn("Contract", F.when(shifted, F.lit("Two year")).otherwise(F.col("Contract"))))
        write_table(rows, settings.table(pipe.scoring_input), overwrite_schema=True)
        res = score(spark, settings, pipe, day, model=model)
        record_run(spark, settings, RunRecord(f"s{i}", "score", pipe.name, day, input_table=res.input_table,
                                              input_version=res.input_version).finish("succeeded"))
        churn = F.col("Churn")
        if i >= 8:
            churn = F.when(F.col("Contract") == "Month-to-month",
                           F.when(churn == "Yes", "No").otherwise("Yes")).otherwise(churn)
        part = rows.select("customerID", churn.alias("Churn"), F.lit(day + dt.timedelta(days=2)).alias("label_date"))
        labels = part if labels is None else labels.unionByName(part)
    write_table(labels.where(F.col("label_date") <= F.lit(days[-1])), settings.table(f"actuals_{NAME}"))


def screenshot(page: Path, target: Path, work: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={work / 'chromium'}",
           f"--screenshot={target}", "--window-size=1400,2050", "--virtual-time-budget=15000", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def main() -> None:
    args = parse_args()
    work, settings, spark, _ = start("lakeforge-monitor-demo-", "2g")
    from lakeforge.monitoring.job import monitor
    from lakeforge.monitoring.report import write_report

    pipe = pipeline(work)
    days = [DAY0 + dt.timedelta(days=i) for i in range(1, args.days + 1)]
    simulate(spark, settings, pipe, days)
    result = monitor(spark, settings, pipe, days, progress=print)
    for a in result.alerts:
        print(a.line())
    page = write_report(settings, pipe, work / "monitor.html")
    if args.report:
        shutil.copyfile(page, args.report)
    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
    screenshot(page, Path(args.screenshot), work)
    print(f"report {page} -> screenshot {args.screenshot}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
