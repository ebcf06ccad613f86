"""The data-quality gate of the later stages: which version of a loaded table training and
scoring may read.

A load whose ``error``-severity checks fail is committed (its rows can be inspected) but
recorded as ``failed_checks`` in ``ingest_runs`` (its failures are in ``dq_results``). Its rows
stay in every later version until a load that passed replaces them: an ``overwrite`` load (the
whole table), an ``append`` load of the same run date (its partition) or an ``incremental``
load of the same files (their rows). Training and scoring read the latest version when it holds
no such rows; else the last version that did not, saying so in one line; else they refuse, in
one line. ``--allow-failed-checks`` reads the latest version anyway (said in one line too).

Pure: the table's loads in (lakeforge.ingest.job.load_history reads them from ``ingest_runs``
and ``dq_results``), a version and a line out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lakeforge.core.errors import InputDataError

OVERRIDE = "--allow-failed-checks"


@dataclass(frozen=True)
class Load:
    """One committed load of a table, as ``ingest_runs`` (and ``dq_results``) record it."""

    version: int  # the table version the load committed
    run_id: str
    run_date: dt.date
    mode: str  # overwrite | append | incremental
    files: frozenset[str] = frozenset()
    passed: bool = True  # no error-severity check failed


@dataclass(frozen=True)
class Choice:
    version: int
    note: str | None = None  # the one line to show; none when the latest version is clean


def _left(failed: Load, files: frozenset[str], later: Load) -> frozenset[str] | None:
    """The files of ``failed`` whose rows are still in the table after ``later`` (a load that
    passed) committed; None when none of its rows are. (Every row of a load has its run date
    and its file.)"""
    if later.mode == "overwrite" or (later.mode == "append" and later.run_date == failed.run_date):
        return None
    if later.mode == "incremental" and later.files and files:
        return (files - later.files) or None
    return files


def failed_rows(loads: list[Load], latest: int) -> tuple[list[Load], int | None]:
    """The loads that failed their checks whose rows are in version ``latest``, oldest first,
    and the last version before them that held none (None: no version after a load did)."""
    pending: dict[Load, frozenset[str]] = {}
    last_clean = None
    ordered = sorted((ld for ld in loads if ld.version <= latest), key=lambda ld: ld.version)
    for i, load in enumerate(ordered):
        if not pending and i > 0:  # the versions since the previous load are clean
            last_clean = load.version - 1
        if load.passed:
            pending = {f: rest for f, files in pending.items() if (rest := _left(f, files, load)) is not None}
        else:
            pending[load] = load.files
    return list(pending), last_clean


def choose(loads: list[Load], latest: int, table: str, stage: str, allow_failed_checks: bool = False) -> Choice:
    """The version of ``table`` that ``stage`` ('training', 'scoring') reads: ``latest`` when no
    failed load's rows are in it (or ``allow_failed_checks``), else the last version that passed.
    Raises InputDataError when there is none."""
    failed, clean = failed_rows(loads, latest)
    if not failed:
        return Choice(latest)
    newest = failed[-1]
    more = f" and {len(failed) - 1} earlier load(s)" if len(failed) > 1 else ""
    what = f"{table} version {latest} holds rows that failed error checks (load of {newest.run_date}{more}; dq_results)"
    if allow_failed_checks:
        return Choice(latest, f"{what}: {stage} uses it anyway ({OVERRIDE})")
    if clean is None:
        raise InputDataError(f"{what} and no earlier version passed: no {stage}. Fix the source and ingest again, "
                             f"or rerun with {OVERRIDE}")
    return Choice(clean, f"{what}: {stage} uses version {clean}, the last that passed ({OVERRIDE} overrides)")
