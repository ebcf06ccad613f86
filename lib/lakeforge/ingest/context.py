"""What a load of one source knows before it reads a record: shared by the steps of the load."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql.types import StructType

from lakeforge.core.config_source import SourceConfig


@dataclass(frozen=True)
class LoadContext:
    name: str  # the source's name in the pipeline config ("main" for ``source``)
    src: SourceConfig
    where: str  # where the source is configured, for messages ("x.yaml: sources.orders")
    table: str  # the bronze table (qualified name)
    mode: str  # overwrite, append or incremental
    run_id: str
    run_date: dt.date
    progress: Callable[[str], None] | None = None  # progress lines (None: quiet)
    key: str | None = None  # the pipeline's key column, for the main source
    exists: bool = False  # the bronze table exists
    table_schema: StructType | None = None  # its data columns (no load metadata, no row id)
    migrate: bool = False  # the table has an earlier version's load metadata, which this load replaces
    explicit: StructType | None = None  # the configured ``schema``, as written (names not normalised)

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)

    @property
    def quarantine(self) -> str:
        return self.table + "_quarantine"
