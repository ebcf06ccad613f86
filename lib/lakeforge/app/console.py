"""What the commands print: stage lines on stderr, tables and results on stdout (rich)."""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Tables keep their full width when written to a pipe or a file (rich's default there is 80).
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


def stage(msg: str) -> float:
    """Announce a stage; returns its start time for ``done``."""
    err.print(Text.assemble((">> ", "bold cyan"), msg), highlight=False)
    return time.perf_counter()


def done(t0: float, msg: str) -> float:
    """Close a stage started at ``t0``; returns its seconds."""
    secs = time.perf_counter() - t0
    err.print(Text.assemble(("   done", "green"), f" in {secs:.1f}s: {msg}"), highlight=False)
    return secs


def note(msg: str) -> None:
    """A dim progress line under the current stage."""
    out.print(f"  [dim]{msg}[/dim]", highlight=False)


def error(message: str) -> None:
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False)


def print_ingest(results) -> None:
    table = Table(title="ingest", title_justify="left")
    for col in ("source", "table", "read", "loaded", "quarantined", "dropped", "deduplicated", "version", "seconds"):
        table.add_column(col, justify="right" if col not in ("source", "table") else "left")
    for r in results:
        table.add_row(r.name, r.table, str(r.rows_read), str(r.rows_loaded), str(r.rows_quarantined),
                      str(r.rows_dropped), str(r.rows_deduplicated), "-" if r.version is None else str(r.version),
                      f"{r.seconds:.1f}")
    out.print(table)
    for r in results:
        if r.column_mapping:
            out.print(f"  {r.name}: column names normalised: " + renames(r.column_mapping, "all in ingest_runs"))
        for change in r.schema_changes:
            out.print(f"  {r.name}: schema change accepted (schema_evolution): {change}")
        if r.rows_quarantined:
            out.print(f"  {r.name}: {r.rows_quarantined} bad record(s) with their reasons in {r.table}_quarantine")
    checks = [(r, c) for r in results for c in r.checks]
    if checks:
        t = Table(title="data-quality checks", title_justify="left")
        for col in ("table", "check", "severity", "result", "failing rows", "detail"):
            t.add_column(col)
        for r, c in checks:
            t.add_row(r.table, c.check.label, c.check.severity, "pass" if c.passed else "FAIL",
                      str(c.failing_rows), c.detail)
        out.print(t)


def print_leaderboard(res, pipeline) -> None:
    metric = res.metric
    m = pipeline.model
    how = f"{m.n_folds}-fold cross-validated" if m.n_folds > 1 else "validation-split"
    table = Table(title=f"Leaderboard: {how} {metric} ({res.task})")
    for col in ("#", "algorithm", "params", "mean", "std", "fit s", "status"):
        table.add_column(col, no_wrap=col not in ("params", "status"))
    for row in res.leaderboard:
        params = " ".join(f"{k}={v}" for k, v in json.loads(row["params"]).items())
        mean, std = row["cv_mean"], row["cv_std"]
        table.add_row(
            str(row["rank"] or "-"), row["algorithm"], params,
            "" if mean is None else f"{mean:.4f}", "" if std is None else f"{std:.4f}",
            f"{row['fit_seconds']:.1f}", row["status"],
            style="bold" if row["is_best"] else None,
        )
    out.print(table)
    shown = {"binary": ("roc_auc", "pr_auc", "accuracy", "f1", "log_loss"), "multiclass": ("f1_macro", "accuracy", "log_loss"),
             "regression": ("rmse", "mae", "r2", "mape")}.get(res.task, tuple(res.test_metrics))
    names = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "f1": "F1", "f1_macro": "macro F1", "rmse": "RMSE", "mae": "MAE",
             "r2": "R2", "mape": "MAPE", "log_loss": "log loss"}
    vals = "  ".join(f"{names.get(k, k)} {res.test_metrics[k]:.4f}" for k in shown if k in res.test_metrics)
    out.print(
        f"Held-out test ({res.rows_test} rows): {vals}  (trained on {res.rows_train} rows of "
        f"{res.table} version {res.table_version})"
    )
    if res.threshold is not None:
        out.print(f"Decision threshold on P(positive): {res.threshold:.4f} ({pipeline.model.threshold.strategy}, from the validation folds)")
    out.print(f"Registry: {res.decision}")
    if res.report:
        out.print(f"Training report: {res.report}")


def print_card(card) -> None:
    table = Table(title=f"Problem card: {card.name} ({card.rows:,} rows)")
    for col in ("column", "type", "role", "why", "nulls"):
        table.add_column(col, no_wrap=col != "why")
    for c in card.columns:
        table.add_row(c.name, c.dtype, c.role, c.reason, f"{c.nulls:,}")
    out.print(table)
    shares = ", ".join(f"{k} {v:.1%}" for k, v in list(card.class_shares.items())[:8])
    out.print(f"Task: {card.task} ({card.task_reason})" + (f"; target {card.target!r}" if card.target is not None else "")
              + (f", positive class {card.positive_class!r}" if card.positive_class is not None else "")
              + (f"; classes: {shares}" if shares else ""))
    out.print(f"Metric: {card.metric} ({card.metric_reason}); key: {card.key}")
    if card.row_id:
        out.print(f"Key: {card.key_note or 'no ID-like column'}, so ingest adds {card.row_id}: a hash of each row's content (source.row_id)")
    out.print("Leakage suspects: " + ("; ".join(card.leakage) if card.leakage else "none"))
    if card.renamed:
        out.print("Column names in bronze: " + renames(card.renamed, "all in the card"))


def renames(mapping: dict[str, str], where: str, shown: int = 8) -> str:
    text = ", ".join(f"{a!r} -> {b}" for a, b in list(mapping.items())[:shown])
    return text + (f" ... ({len(mapping) - shown} more; {where})" if len(mapping) > shown else "")



def print_profile(res, threshold: float) -> None:
    """The summary of ``lakeforge profile`` (a ProfileRun)."""
    r = res.result
    t = r.target
    out.print(f"Profiled {res.source}: {r.rows:,} rows x {len(r.columns)} columns in {r.passes} passes over the data "
              f"({r.seconds.get('total', 0):.1f} s).")
    if t.task == "binary":
        total = sum(n for _, n in t.classes)
        pos = dict(t.classes).get(t.positive_class, 0)
        out.print(f"Target {t.name} (binary): {t.rate_name} {pos / total:.3f} ({pos:,} of {total:,} rows are {t.positive_class!r}).")
    else:
        out.print(f"Target {t.name} ({t.task}).")
    pairs = {}
    for x in r.flagged:
        pairs.setdefault((x["column_a"], x["column_b"]), []).append(f"{x['method']} {x['value']:.3f}")
    out.print(f"Flagged pairs (|value| >= {threshold}): {len(pairs)}" + (": " if pairs else "")
              + "; ".join(f"{a} / {b} ({', '.join(v)})" for (a, b), v in list(pairs.items())[:8])
              + (" ..." if len(pairs) > 8 else ""), highlight=False)
    out.print("Leakage suspects: " + ("; ".join(f"{x['column']} ({x['reason']})" for x in r.leakage) if r.leakage else "none"),
              highlight=False)
    if r.warnings:
        out.print(f"Data warnings: {len(r.warnings)} (" + "; ".join(r.warnings[:5]) + (" ..." if len(r.warnings) > 5 else "") + ")",
                  highlight=False)
    out.print(f"Report: {res.report_path or '(reports_dir is null: MLflow only)'}")
    out.print("Tables: " + ", ".join(f"{name} (version {v})" for name, v in res.tables.items()) + f"; MLflow run {res.mlflow_run_id}")
