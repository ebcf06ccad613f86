"""The results of scripts/bench_scale.py as Markdown tables (stage x size, growth exponents, pandas).

    .venv/bin/python scripts/bench_scale_report.py docs/bench_scale.json [more.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STAGES = ["startup", "ingest", "profile", "train", "score", "monitor"]


def _fmt(v, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def stage_table(results: dict) -> list[str]:
    lines = ["| rows | stage | wall s | rows/s | driver heap peak MB | heap after GC max / last MB | driver JVM RSS MB "
             "| Python RSS MB | files (MB) | spill mem / disk MB | ok |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for size in results["sizes"]:
        for stage in STAGES:
            m = size["stages"].get(stage)
            if not m:
                continue
            execs = f" (+ executors {', '.join(_fmt(x) for x in m['executor_peak_rss_mb'])})" if m.get("executor_peak_rss_mb") else ""
            lines.append(
                f"| {size['rows']:,} | {stage} | {m['wall_s']:.1f} | {_fmt(m.get('rows_per_s'))} | {_fmt(m['jvm_peak_heap_mb'])} "
                f"| {_fmt(m['jvm_max_heap_after_gc_mb'])} / {_fmt(m['jvm_last_heap_after_gc_mb'])} | {_fmt(m['jvm_peak_rss_mb'])}{execs} "
                f"| {_fmt(m['python_peak_rss_mb'])} | {m['files_written']} ({_fmt(m['bytes_written_mb'])}) "
                f"| {_fmt(m['spill_memory_mb'])} / {_fmt(m['spill_disk_mb'])} | {'yes' if m['ok'] else 'NO (exit ' + str(m['exit_code']) + ')'} |")
    return lines


def exponent_table(results: dict) -> list[str]:
    lines = ["| stage | from -> to rows | exponent (wall) | exponent (wall less the fixed cost) |", "|---|---|---:|---:|"]
    for stage, spans in results.get("exponents", {}).items():
        for e in spans:
            lines.append(f"| {stage} | {e['from']:,} -> {e['to']:,} | {e['exponent']:.2f} | {_fmt(e['exponent_less_fixed_cost'], 2)} |")
    return lines


def pandas_table(results: dict) -> list[str]:
    lines = ["| rows | outcome | read s | logistic fit+test s (AUC) | HistGB fit+test s (AUC) | total s | peak RSS MB |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for size in results["sizes"]:
        p = size.get("pandas")
        if not p:
            continue
        lr, hgb = p.get("logistic_regression") or {}, p.get("hist_gradient_boosting") or {}
        lines.append(f"| {size['rows']:,} | {p.get('outcome')} | {_fmt(p.get('read_s'), 1)} "
                     f"| {_fmt(lr.get('fit_and_test_s'), 1)} ({_fmt(lr.get('test_roc_auc'), 4)}) "
                     f"| {_fmt(hgb.get('fit_and_test_s'), 1)} ({_fmt(hgb.get('test_roc_auc'), 4)}) "
                     f"| {_fmt(p.get('total_s'), 1)} | {_fmt(p.get('peak_rss_mb'))} |")
    return lines


def markdown(results: dict) -> str:
    m, s = results["machine"], results["spark"]
    head = [f"Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, {m['platform']}, Python {m['python']}, Spark {m['spark']}, "
            f"{' '.join(m['java'])}; load average {m['load_average_at_start']} at the start, {m.get('load_average_at_end')} at the end.",
            f"Spark: {s['master']}, driver memory {s['driver_memory']}"
            + (f", executors {s['executor_memory']} x {s['executor_cores']} core(s), cores max {s['cores_max']}" if "executor_memory" in s else "")
            + ".", f"Command: `{results['command']}`", ""]
    data = ["| rows | CSV files | CSV MB | bad records | generated in s |", "|---:|---:|---:|---:|---:|"]
    data += [f"| {z['rows']:,} | {z['data']['files']} | {z['data']['bytes'] / 2**20:,.0f} | {z['data']['bad_rows']:,} "
             f"| {z['data']['generate_s']} |" for z in results["sizes"]]
    out = head + data + [""] + stage_table(results) + [""] + exponent_table(results)
    if any(z.get("pandas") for z in results["sizes"]):
        out += ["", *pandas_table(results)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for f in sys.argv[1:]:
        print(markdown(json.loads(Path(f).read_text())))
