"""Progress of a long load: the share of finished tasks of the running Spark stages."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pyspark.sql import SparkSession


class SparkProgress:
    """Prints the share of finished tasks of the running Spark stages every few seconds."""

    def __init__(self, spark: SparkSession, label: str, say: Callable[[str], None] | None, every: float = 5.0):
        self.tracker = spark.sparkContext.statusTracker()
        try:
            self.store = spark.sparkContext._jsc.sc().statusStore()  # noqa: SLF001
        except Exception:  # noqa: BLE001
            self.store = None
        self.label, self.say, self.every = label, say, every
        self._stop = threading.Event()

    def __enter__(self):
        if self.say:
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            done = total = 0
            rows = None
            try:  # rows read so far by finished tasks, from Spark's status store
                for st in self.store.activeStages():
                    done += st.numCompleteTasks()
                    total += st.numTasks()
                    rows = (rows or 0) + st.inputRecords()
            except Exception:  # noqa: BLE001 - the status API is not public: fall back
                rows = None
                for sid in self.tracker.getActiveStageIds():
                    info = self.tracker.getStageInfo(sid)
                    if info:
                        done += info.numCompletedTasks
                        total += info.numTasks
            if total:
                extra = f", {rows:,} rows read so far" if rows else ""
                self.say(f"{self.label}: {done}/{total} file splits done{extra}")
