"""Alerts without fatigue: a breach is confirmed when at least M of the last N windows breach and
the latest does (default 2 of 5, as Databricks MLOps Stacks does). Confirmed alerts (and retrain
decisions) go to ``<pipeline>_alerts``; one window's alert of a kind is replaced on a rerun.
An optional webhook: the URL is read from the environment variable ``monitoring.alert.webhook_env``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.request
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.core.frames import local_frame
from lakeforge.core.io import write_table

ALERT_EXIT_CODE = 3  # lakeforge monitor's exit code when an alert is confirmed
ALERTS_SCHEMA = (
    "pipeline string, alert_type string, window_start date, model_name string, model_version string, "
    "status string, breaches int, of_last int, detail string, created_at timestamp"
)


@dataclass(frozen=True)
class Alert:
    pipeline: str
    alert_type: str  # "drift", "performance", "retrain"
    window_start: dt.date
    model_name: str
    model_version: str
    status: str  # "confirmed" (or "answered" once a retrain answered it), "promoted", "kept"
    breaches: int
    of_last: int
    detail: str

    def line(self) -> str:
        return (f"ALERT {self.alert_type} {self.pipeline} window {self.window_start}: {self.breaches} of the last "
                f"{self.of_last} windows breach ({self.detail})")

    def row(self, now: dt.datetime) -> dict:
        return {**self.__dict__, "created_at": now}


def confirmed(history: list[bool | None], breaches: int, of_last: int) -> tuple[bool, int]:
    """(confirmed?, breaching windows among the last ``of_last``) for windows oldest -> latest;
    None (too few rows) counts as no breach."""
    last = history[-of_last:]
    count = sum(1 for h in last if h)
    return bool(last and last[-1] and count >= breaches), count


def alerts_table(pipeline_name: str) -> str:
    return f"{pipeline_name}_alerts"


ANSWERED = "answered"  # a confirmed drift / performance alert a later retrain decision answered
WATCHED = ("drift", "performance")


def write_alerts(spark: SparkSession, table: str, pipeline: str, alert_type: str, windows: list[dt.date],
                 alerts: list[Alert]) -> None:
    """Replace the alerts of this kind for these windows, idempotent per (window, alert): a drift or
    performance alert confirmed again keeps its first confirmation time and an ``answered`` status
    (a rerun neither re-dates nor reopens it); one that no longer holds is removed."""
    if not windows:
        return
    now = dt.datetime.now()
    first = _first_seen(spark, table, pipeline, alert_type, windows) if alert_type in WATCHED and alerts else {}
    rows = []
    for a in alerts:
        row = a.row(now)
        if a.window_start in first:
            status, created = first[a.window_start]
            row["created_at"] = created
            row["status"] = ANSWERED if status == ANSWERED else row["status"]
        rows.append(row)
    df = local_frame(spark, rows, ALERTS_SCHEMA)
    starts = ", ".join(f"DATE'{w.isoformat()}'" for w in sorted(set(windows)))
    write_table(df, table, replace_where=f"pipeline = '{pipeline}' AND alert_type = '{alert_type}' AND window_start IN ({starts})")


def _first_seen(spark: SparkSession, table: str, pipeline: str, alert_type: str, windows: list[dt.date]) -> dict:
    """window start -> (status, created_at) of the stored alerts of this kind (one small query)."""
    if not spark.catalog.tableExists(table):
        return {}
    rows = (spark.table(table).where((F.col("pipeline") == pipeline) & (F.col("alert_type") == alert_type)
                                     & F.col("window_start").isin(sorted(set(windows))))
            .select("window_start", "status", "created_at").collect())
    return {r["window_start"]: (r["status"], r["created_at"]) for r in rows}


def mark_answered(spark: SparkSession, table: str, pipeline: str, until: dt.datetime) -> None:
    """The confirmed drift / performance alerts created up to ``until`` become ``answered`` (one
    Delta update: a retrain decision answers every alert open when it started)."""
    from delta.tables import DeltaTable

    if not spark.catalog.tableExists(table):
        return
    cond = ((F.col("pipeline") == pipeline) & F.col("alert_type").isin(*WATCHED) & (F.col("status") == "confirmed")
            & (F.col("created_at") <= F.lit(until)))
    DeltaTable.forName(spark, table).update(cond, {"status": F.lit(ANSWERED)})


def open_alert(spark: SparkSession, table: str, pipeline: str) -> dict | None:
    """The latest confirmed drift / performance alert not answered by a later retrain decision."""
    if not spark.catalog.tableExists(table):
        return None
    rows = spark.table(table).where(F.col("pipeline") == pipeline).orderBy("created_at").collect()
    latest = None
    for r in rows:
        if r["alert_type"] in WATCHED and r["status"] == "confirmed":
            latest = r.asDict()
        elif r["alert_type"] == "retrain":
            latest = None
    return latest


def notify(alert: Alert, env_var: str | None) -> str | None:
    """POST the alert as JSON to the URL in ``env_var``; returns a note when that failed."""
    url = os.environ.get(env_var or "") if env_var else None
    if not url:
        return None
    body = json.dumps({**alert.__dict__, "window_start": alert.window_start.isoformat(), "text": alert.line()}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the operator's URL
            response.read()
    except OSError as exc:
        return f"webhook ${env_var} failed: {type(exc).__name__}"
    return None
