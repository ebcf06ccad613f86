"""``lakeforge profile PIPELINE_YAML``: the EDA report of a pipeline's data.

Registered on the ``lakeforge`` group by lakeforge.cli (``register(cli)``). The helpers of
lakeforge.cli are imported when the command runs, so this module can be registered from
anywhere in cli.py.
"""

from __future__ import annotations

import uuid

import click


def register(cli_group: click.Group) -> None:
    cli_group.add_command(profile_command)


@click.command("profile")
@click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False))
@click.option("--threshold", default=0.8, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Flag pairs of columns whose |correlation| or Cramér's V reaches this.")
@click.pass_obj
def profile_command(ctx, pipeline_file: str, threshold: float) -> None:
    """Profile the pipeline's data (its bronze table, else its source): an EDA report.

    \b
    Per column: type, count, missing, approximate distinct count, mean, std, min, quartiles,
    max, skew, top values, IQR outliers, a histogram or bar chart. The target: its class
    balance or distribution, and its rate (binary), mean (numeric) or class shares per level
    of each categorical and per decile bin of each numeric column. Pearson and Spearman
    correlation heatmaps, Cramér's V between categoricals, flagged pairs, leakage suspects.

    \b
    Three passes over the data (Spark aggregations; nothing row-level reaches the driver).
    Writes <reports_dir>/<pipeline>/profile.html (self-contained, opens offline), the Delta
    tables profile_columns and profile_correlations (this pipeline's rows replaced), and an
    MLflow run with the report and the numbers as JSON.
    """
    from lakeforge import cli
    from lakeforge.profile import run_profile

    settings, pipeline = cli._load(ctx, pipeline_file)
    with cli._session(settings) as spark:
        t0 = cli._stage(f"profile {pipeline.name}: {settings.table(pipeline.tables.bronze)} (or its source)")
        res = run_profile(spark, settings, pipeline, uuid.uuid4().hex, threshold=threshold,
                          progress=lambda msg: cli.out.print(f"  [dim]{msg}[/dim]", highlight=False))
        r = res.result
        cli._done(t0, f"{r.rows:,} rows, {len(r.columns)} columns, {r.passes} passes over the data")
    t = r.target
    out = cli.out
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
