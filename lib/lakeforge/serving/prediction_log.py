"""The prediction log: every scored record (request id, time, model, inputs, outputs) as one JSON
line (flat: the log's fields, score, predicted_label, then the inputs as sent) in
``<log_dir>/<pipeline>/predictions-<start>-<pid>-<n>.jsonl``. The file being written is
``.jsonl.part``; it is renamed to ``.jsonl`` (finished, safe to ingest) when it reaches
``log_max_bytes``, is ``log_max_age_s`` old, or the server stops.

A request only puts its batch on a bounded queue (``put_nowait``: never waits); one background
thread serialises and appends. A full queue drops the batch and a failed write (disk full) drops
it too: both are counted in /metrics, neither reaches the client. ``lakeforge ingest`` loads the
files as a JSON source (conf/pipelines/telco_churn.yaml has the example, table
``prediction_log_telco_churn``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path

from lakeforge.serving.metrics import ServerMetrics

log = logging.getLogger("lakeforge.serve")
_STOP = object()
LOG_FIELDS = ("request_id", "record_index", "logged_at", "model_name", "model_version", "score", "predicted_label")


class PredictionLog:
    def __init__(self, folder: Path, max_bytes: int, max_queue: int, metrics: ServerMetrics, max_age_s: float = 3600.0):
        self.folder = Path(folder)
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self._opened = 0.0
        self.metrics = metrics
        self.queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._n = 0
        self._file = None
        self._size = 0
        self._stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def put(self, request_id: str, model_name: str, model_version: str, records: list[dict], outputs: list[dict]) -> None:
        """Queue one request's records; never blocks, never raises."""
        try:
            self.queue.put_nowait((request_id, time.time(), model_name, model_version, records, outputs))
        except queue.Full:
            self.metrics.log_dropped.inc(len(records))

    def _open(self) -> None:
        self._n += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"predictions-{self._stamp}-{os.getpid()}-{self._n:05d}.jsonl.part"
        self._file = open(path, "ab")  # noqa: SIM115 - kept open between batches
        self._size, self._opened = 0, time.monotonic()

    def _finish(self) -> None:
        """Close the file being written and rename it to .jsonl (finished)."""
        f, self._file, self._size = self._file, None, 0
        if f is None:
            return
        try:
            f.close()
            Path(f.name).rename(f.name.removesuffix(".part"))
        except OSError as exc:
            self.metrics.log_errors.inc()
            log.warning("prediction log: could not finish %s (%s)", f.name, exc.strerror or exc)

    def _lines(self, item) -> list[str]:
        """One flat JSON object per record: the log's fields, the outputs, then the inputs as sent
        (an input named like a log field is kept as ``input_<name>``)."""
        request_id, ts, name, version, records, outputs = item
        at = dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="microseconds")
        lines = []
        for i, (rec, out) in enumerate(zip(records, outputs)):
            row = {"request_id": request_id, "record_index": i, "logged_at": at, "model_name": name,
                   "model_version": version, "score": out["score"]}
            if "predicted_label" in out:
                row["predicted_label"] = out["predicted_label"]
            for k, v in rec.items():
                row[f"input_{k}" if k in LOG_FIELDS else k] = v
            lines.append(json.dumps(row, allow_nan=True, default=str) + "\n")
        return lines

    def _write(self, item) -> None:
        lines = self._lines(item)
        data = "".join(lines).encode()
        try:
            if self._file is not None and self._size > 0 and self._size + len(data) > self.max_bytes:
                self._finish()
            if self._file is None:
                self._open()
            self._file.write(data)
            self._file.flush()
            self._size += len(data)
            self.metrics.log_written.inc(len(lines))
        except OSError as exc:
            self.metrics.log_errors.inc()
            self.metrics.log_dropped.inc(len(lines))
            log.warning("prediction log: write failed (%s); %d record(s) not logged", exc.strerror or exc, len(lines))
            self._finish()

    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=min(self.max_age_s, 60.0))
            except queue.Empty:
                item = None
            if self._file is not None and time.monotonic() - self._opened >= self.max_age_s:
                self._finish()
            if item is None:
                continue
            if item is _STOP:
                break
            try:
                self._write(item)
            except Exception:  # noqa: BLE001 - the log thread must outlive any record
                self.metrics.log_errors.inc()
                log.exception("prediction log: unexpected error")
        self._finish()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
