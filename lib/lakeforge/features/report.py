"""What preprocessing did to the data (``PreprocessingReport``): rows profiled, values coerced to
null, columns dropped with the reason, fit-time statistics and the feature-selection ranking.
lakeforge.training logs it to MLflow (preprocessing.json and short params) and prints its lines."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class PreprocessingReport:
    """What preprocessing did to the data: logged to MLflow (preprocessing.json) and printed."""

    rows_profiled: int = 0  # training rows the statistics were computed on
    rows_missing_target: int | None = None  # dropped before training
    duplicates_removed: int | None = None
    dropped_columns: list[dict] = field(default_factory=list)  # {column, reason, detail}
    coerced_to_null: dict[str, dict] = field(default_factory=dict)  # column -> {count, example, as}
    missing_counts: dict[str, int] = field(default_factory=dict)  # feature -> missing values (training rows)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    fitted: dict[str, dict] = field(default_factory=dict)  # fit-time statistics (clip bounds, kept levels)
    ranking: list[dict] = field(default_factory=list)  # feature selection
    encodings: list[dict] = field(default_factory=list)  # per categorical feature: {column, levels, encoding, reason}
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def params(self) -> dict[str, str | int]:
        """Short MLflow params (the full report is an artifact)."""
        out: dict[str, str | int] = {"prep.features_numeric": len(self.numeric), "prep.features_categorical": len(self.categorical)}
        if self.rows_missing_target is not None:
            out["prep.rows_missing_target"] = self.rows_missing_target
        if self.duplicates_removed is not None:
            out["prep.duplicates_removed"] = self.duplicates_removed
        if self.dropped_columns:
            out["prep.dropped_columns"] = json.dumps({d["column"]: d["reason"] for d in self.dropped_columns})[:6000]
        if self.coerced_to_null:
            out["prep.coerced_to_null"] = json.dumps({c: v["count"] for c, v in self.coerced_to_null.items()})[:6000]
        bounded = {e["column"]: e["levels"] for e in self.encodings if e["encoding"] == "bounded"}
        if bounded:
            out["prep.bounded_encoding"] = json.dumps(bounded)[:6000]
        if self.ranking:
            out["prep.selected_features"] = len({r["feature"] for r in self.ranking if r.get("selected")})
        return out

    def lines(self) -> list[str]:
        out = []
        if self.rows_missing_target:
            out.append(f"{self.rows_missing_target:,} row(s) without a target value dropped")
        if self.duplicates_removed:
            out.append(f"{self.duplicates_removed:,} duplicate row(s) removed")
        for c, v in self.coerced_to_null.items():
            out.append(f"{c}: {v['count']:,} value(s) not readable as {v['as']} became null (e.g. {v['example']!r})")
        for d in self.dropped_columns:
            out.append(f"column {d['column']!r} dropped: {d['reason']} ({d['detail']})")
        onehot = [e for e in self.encodings if e["encoding"] == "onehot"]
        if onehot:
            most = max(e["levels"] for e in onehot)
            out.append(f"encoding: {len(onehot)} categorical column(s) one-hot (at most {most:,} levels each)")
        out += [f"encoding: {e['column']}: {e['reason']}" for e in self.encodings if e["encoding"] == "bounded"]
        out += self.notes
        if self.ranking:
            kept = sorted({r["feature"] for r in self.ranking if r.get("selected")})
            out.append(f"feature selection kept {len(kept)} feature(s)")
        return out
