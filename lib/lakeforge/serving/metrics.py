"""The server's Prometheus metrics (GET /metrics, text format), in a registry of its own so that
several servers in one process (tests) do not share counters."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# request latencies from 0.25 ms to 10 s: one record is a millisecond, a 10,000-record batch a second
BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("lakeforge_serve_requests", "HTTP requests by route and status code",
                                ["route", "status"], registry=r)
        self.latency = Histogram("lakeforge_serve_request_seconds", "Request latency by route (seconds)",
                                 ["route"], buckets=BUCKETS, registry=r)
        self.errors = Counter("lakeforge_serve_errors", "Refused or failed requests by kind",
                              ["kind"], registry=r)
        self.rows = Counter("lakeforge_serve_rows_scored", "Records scored", registry=r)
        self.model = Gauge("lakeforge_serve_model_info", "The model being served (value 1)",
                           ["name", "version", "alias", "scorer"], registry=r)
        self.model_version = Gauge("lakeforge_serve_model_version", "The registered version being served", registry=r)
        self.reloads = Counter("lakeforge_serve_model_reloads", "Alias moves picked up (new version swapped in)",
                               registry=r)
        self.log_written = Counter("lakeforge_serve_prediction_log_records", "Records written to the prediction log",
                                   registry=r)
        self.log_errors = Counter("lakeforge_serve_prediction_log_write_errors",
                                  "Prediction-log writes that failed (disk full, permissions...)", registry=r)
        self.log_dropped = Counter("lakeforge_serve_prediction_log_dropped",
                                   "Records not logged because the log queue was full or writing failed", registry=r)

    def set_model(self, old, new) -> None:
        if old is not None:
            try:
                self.model.remove(old.name, old.version, old.alias or "", old.scorer.kind)
            except KeyError:
                pass
            self.reloads.inc()
        self.model.labels(new.name, new.version, new.alias or "", new.scorer.kind).set(1)
        try:
            self.model_version.set(float(new.version))
        except ValueError:
            self.model_version.set(float("nan"))

    def text(self) -> bytes:
        return generate_latest(self.registry)
