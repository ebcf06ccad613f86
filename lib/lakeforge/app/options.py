"""Click helpers shared by the command modules (app/cli.py and app/cli_*.py)."""

from __future__ import annotations

import datetime as dt

import click

from lakeforge.app import runner


def iso_date(_ctx, _param, value: str | None) -> dt.date | None:
    """A click callback: ``YYYY-MM-DD`` as a date (None stays None), else a usage error naming it."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def run_dates(run_date: dt.date | None, date_from: dt.date | None = None, date_to: dt.date | None = None) -> list[dt.date]:
    """The run dates of a command (lakeforge.app.runner.dates), a wrong combination or a date in
    the future as a usage error."""
    try:
        return runner.dates(run_date, date_from, date_to)
    except runner.UsageProblem as exc:
        raise click.UsageError(str(exc)) from None
