"""``lakeforge monitor --follow``: closing the windows of the streaming aggregation.

Each micro-batch of the query (lakeforge.monitoring.follow) holds the grouped rows (window, model
version, column, bin / category) of the windows its watermark has just closed, and only those: a
window is emitted once, when its end is ``follow_late_minutes`` behind the latest record seen.
Here they become the same summaries as the batch monitor's (lakeforge.monitoring.aggregates.build),
the same profile and drift rows (BASELINE against the model version's reference, CONSECUTIVE
against the version's previous window) and the same M-of-N alert rule, in the live tables
``<pipeline>_live_profile_metrics``, ``<pipeline>_live_drift_metrics`` and
``<pipeline>_live_alerts``: the layout of the batch tables with window_start / window_end (and
compared_window_start) as timestamps.

Every write replaces the rows of the batch's windows (replaceWhere on the windows' starts), so a
micro-batch that Spark runs again after a crash (its writes done, its commit not) rewrites the same
rows: no window is doubled; the checkpoint makes sure none is skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core.config import PipelineConfig
from lakeforge.core.frames import local_frame
from lakeforge.core.io import write_table
from lakeforge.core.settings import Settings
from lakeforge.monitoring import alerts as al
from lakeforge.monitoring.aggregates import ColumnSpec, build, empty_like
from lakeforge.monitoring.drift import ColumnDrift, column_drift, dataset_drift
from lakeforge.monitoring.metrics import (
    DRIFT_SCHEMA, PROFILE_SCHEMA, TABLE_ROW, WindowKey, drift_rows, profile_rows, summary_from_profile)

ROWS_ENTRY = TABLE_ROW  # the stacked entry every log row adds once: the rows of a (window, version)


def _timestamps(schema: str, *columns: str) -> str:
    for c in columns:
        schema, found = re.subn(rf"\b{c} date\b", f"{c} timestamp", schema)
        if found != 1:
            raise RuntimeError(f"monitoring table layout changed: no '{c} date' in {schema[:80]}...")
    return schema


LIVE_PROFILE_SCHEMA = _timestamps(PROFILE_SCHEMA, "window_start", "window_end")
LIVE_DRIFT_SCHEMA = _timestamps(DRIFT_SCHEMA, "window_start", "window_end", "compared_window_start")
LIVE_ALERTS_SCHEMA = _timestamps(al.ALERTS_SCHEMA, "window_start")


def live_tables(pipeline: PipelineConfig) -> dict[str, str]:
    n = pipeline.name
    return {"profile": f"{n}_live_profile_metrics", "drift": f"{n}_live_drift_metrics", "alerts": f"{n}_live_alerts"}


def granularity_minutes(minutes: int) -> str:
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


@dataclass(frozen=True)
class VersionPlan:
    """One model version with a stored reference: its monitored columns' summaries and specs."""

    name: str
    version: str
    reference: dict
    specs: list[ColumnSpec]


@dataclass
class ClosedWindow:
    key: WindowKey
    rows: int
    batch: int
    baseline: list[ColumnDrift] = field(default_factory=list)
    dataset: tuple[bool | None, float | None] = (None, None)
    consecutive: list[ColumnDrift] = field(default_factory=list)
    monitored: bool = True  # False: the version had no reference loaded (only its rows are counted)

    def line(self) -> str:
        k = self.key
        span = f"{k.start:%Y-%m-%d %H:%M}-{k.end:%H:%M} UTC"
        head = f"window {span} model {k.model_name} v{k.model_version}: {self.rows:,} rows"
        if not self.monitored:
            return f"{head}, no reference of this version loaded: rows counted only (restart --follow after training)"
        drifting = [r.column for r in self.baseline if r.drifted]
        verdict = {None: "too few rows", True: "DATASET DRIFT", False: "no dataset drift"}[self.dataset[0]]
        more = f" ({len(drifting)} of {len(self.baseline)} columns: {', '.join(drifting[:6])})" if drifting else ""
        return f"{head}, {verdict}{more} (batch {self.batch})"


def _epoch(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc)


def _in_windows(starts: list[dt.datetime]) -> str:
    """SQL: the rows of these window starts (epoch seconds: no time-zone conversion anywhere)."""
    return "unix_seconds(window_start) IN (" + ", ".join(str(int(s.timestamp())) for s in sorted(set(starts))) + ")"


class WindowCloser:
    """The foreachBatch function of the window query (see the module docstring)."""

    def __init__(self, spark: SparkSession, settings: Settings, pipeline: PipelineConfig,
                 plans: dict[tuple[str, str], VersionPlan], say: Callable[[str], None]):
        self.spark, self.settings, self.pipeline, self.plans, self.say = spark, settings, pipeline, plans, say
        self.cfg = pipeline.monitoring
        self.granularity = granularity_minutes(self.cfg.follow_minutes)
        self.tables = {k: settings.table(v) for k, v in live_tables(pipeline).items()}
        self.closed: list[ClosedWindow] = []
        self.alerts: list[al.Alert] = []
        # Per model version, read from the tables once per process (a restart may replay the first
        # batch: keyed by window start, a replayed window replaces itself): the latest window's
        # summaries (CONSECUTIVE) and the dataset-drift verdicts of recent windows (the alert rule).
        self.last: dict[tuple[str, str], tuple[dt.datetime, dict] | None] = {}
        self.history: dict[tuple[str, str], dict[int, bool | None]] = {}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        groups = batch.collect()  # bins and categories of the closed windows only: small
        if not groups:
            return
        found: dict[tuple, dict[str, list]] = {}
        for r in groups:
            key = (r["model_name"], str(r["model_version"]), int(r["ws"]), int(r["we"]))
            found.setdefault(key, {}).setdefault(r["c"], []).append(r)
        now = dt.datetime.now(dt.timezone.utc)
        profile, drift, closed = [], [], []
        for (name, version, ws, we), columns in sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
            key = WindowKey(_epoch(ws), _epoch(we), self.granularity, name, version)
            rows = sum(int(r["n"]) for r in columns.get(ROWS_ENTRY, []))
            plan = self.plans.get((name, version))
            if plan is None:
                closed.append(ClosedWindow(key, rows, batch_id, monitored=False))
                profile.append({**key.row(), "column_name": TABLE_ROW, "data_type": "table", "rows": rows,
                                "count": rows, "computed_at": now})
                continue
            summaries = {s.name: build(s, columns[s.name]) if s.name in columns else empty_like(s) for s in plan.specs}
            if (name, version) not in self.last:
                self.last[(name, version)] = self._previous_window(name, version, key.start)
            before = self.last[(name, version)]
            before = before if before is not None and before[0] < key.start else None
            window = self._judge(key, rows, batch_id, summaries, plan.reference, before)
            profile += profile_rows(key, summaries, plan.reference, now)
            drift += drift_rows(key, "BASELINE", window.baseline, window.dataset, now)
            if before is not None:
                drift += drift_rows(key, "CONSECUTIVE", window.consecutive,
                                    dataset_drift(window.consecutive, self.cfg.dataset_drift_share), now, before[0])
            self.last[(name, version)] = (key.start, summaries)
            closed.append(window)
        self._write(closed, profile, drift)
        alerts = self._alerts([w for w in closed if w.monitored])
        for w in closed:
            self.say(w.line())
        for a in alerts:
            self.say(a.line())
        self.closed += closed
        self.alerts += alerts

    def _judge(self, key: WindowKey, rows: int, batch_id: int, summaries: dict, reference: dict,
               before: tuple | None) -> ClosedWindow:
        cfg = self.cfg
        baseline = [column_drift(c, reference[c], s, cfg) for c, s in summaries.items()]
        window = ClosedWindow(key, rows, batch_id, baseline, dataset_drift(baseline, cfg.dataset_drift_share))
        if before is not None:  # the same version: the same bins
            window.consecutive = [column_drift(c, before[1][c], s, cfg) for c, s in summaries.items() if c in before[1]]
        return window

    def _previous_window(self, name: str, version: str, before: dt.datetime) -> tuple[dt.datetime, dict] | None:
        """The latest stored window of this model version before ``before`` (two small queries)."""
        table = self.tables["profile"]
        if not self.spark.catalog.tableExists(table):
            return None
        mine = self.spark.table(table).where(
            (F.col("model_name") == name) & (F.col("model_version") == version) & (F.col("granularity") == self.granularity)
            & (F.col("column_name") != TABLE_ROW))
        earlier = mine.where(F.unix_seconds("window_start") < int(before.timestamp()))
        rows = (earlier.where(F.col("window_start") == earlier.agg(F.max("window_start")).scalar())
                .withColumn("_s", F.unix_seconds("window_start")).collect())
        if not rows:
            return None
        return _epoch(rows[0]["_s"]), {r["column_name"]: summary_from_profile(r) for r in rows}

    def _write(self, closed: list[ClosedWindow], profile: list[dict], drift: list[dict]) -> None:
        """Replace the batch's windows in both tables (one commit each)."""
        where = f"granularity = '{self.granularity}' AND " + _in_windows([w.key.start for w in closed])
        write_table(local_frame(self.spark, profile, LIVE_PROFILE_SCHEMA), self.tables["profile"], replace_where=where)
        if drift:
            write_table(local_frame(self.spark, drift, LIVE_DRIFT_SCHEMA), self.tables["drift"], replace_where=where)

    def _alerts(self, closed: list[ClosedWindow]) -> list[al.Alert]:
        """The M-of-N rule over each version's dataset-drift verdicts up to each closed window;
        the alerts of these windows are replaced (a re-confirmed one keeps its first created_at)."""
        if not closed:
            return []
        rule = self.cfg.alert
        found = []
        for w in closed:  # in order of version and start
            k = w.key
            if (k.model_name, k.model_version) not in self.history:
                self.history[(k.model_name, k.model_version)] = self._stored_verdicts(k, rule.of_last)
            flags = self.history[(k.model_name, k.model_version)]
            flags[int(k.start.timestamp())] = w.dataset[0]
            for old in sorted(flags)[:-rule.of_last]:
                del flags[old]
            ok, count = al.confirmed([d for _, d in sorted(flags.items())], rule.breaches, rule.of_last)
            if ok:
                drifting = [r.column for r in w.baseline if r.drifted]
                found.append(al.Alert(self.pipeline.name, "drift", k.start, k.model_name, k.model_version, "confirmed",
                                      count, rule.of_last, f"dataset drift: {len(drifting)} column(s) drift: "
                                                           f"{', '.join(drifting[:8])}"))
        return self._write_alerts([w.key.start for w in closed], found)

    def _stored_verdicts(self, key: WindowKey, last: int) -> dict[int, bool | None]:
        """epoch start -> dataset drift of the version's ``last`` stored windows before ``key``."""
        table = self.tables["drift"]
        if not self.spark.catalog.tableExists(table):
            return {}
        rows = (self.spark.table(table)
                .where((F.col("column_name") == TABLE_ROW) & (F.col("drift_type") == "BASELINE")
                       & (F.col("granularity") == self.granularity) & (F.col("model_name") == key.model_name)
                       & (F.col("model_version") == key.model_version)
                       & (F.unix_seconds("window_start") < int(key.start.timestamp())))
                .select(F.unix_seconds("window_start").alias("s"), "drifted").orderBy(F.col("s").desc()).limit(last)
                .collect())
        return {int(r["s"]): r["drifted"] for r in rows}

    def _write_alerts(self, starts: list[dt.datetime], found: list[al.Alert]) -> list[al.Alert]:
        table, where = self.tables["alerts"], f"pipeline = '{self.pipeline.name}' AND " + _in_windows(starts)
        first = {}
        if found and self.spark.catalog.tableExists(table):
            first = {(r["s"], r["model_version"]): r["created_at"] for r in self.spark.table(table).where(where)
                     .select(F.unix_seconds("window_start").alias("s"), "model_version", "created_at").collect()}
        now = dt.datetime.now(dt.timezone.utc)
        rows = []
        for a in found:
            seen = first.get((int(a.window_start.timestamp()), a.model_version))
            rows.append({**a.row(now), "created_at": seen or now})
            if seen is None:  # a batch run again after a crash does not call the webhook twice
                note = al.notify(a, self.cfg.alert.webhook_env)
                if note:
                    self.say(note)
        if rows or self.spark.catalog.tableExists(table):
            write_table(local_frame(self.spark, rows, LIVE_ALERTS_SCHEMA), table, replace_where=where)
        return found
