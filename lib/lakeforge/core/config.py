"""The pipeline config (conf/pipelines/*.yaml): ``PipelineConfig`` and ``load_pipeline``.

Validated once, at start-up, by pydantic models that forbid unknown keys. Every problem is
reported with the file and the key path, e.g.
``conf/pipelines/x.yaml: model.registered_name: required key is missing``.

The sections live in their own modules: lakeforge.core.config_source (source, sources, ingest),
lakeforge.core.config_features (features, preprocessing, selection) and
lakeforge.core.config_model (model, scoring). The environment settings are lakeforge.core.settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from lakeforge.core.config_base import IDENTIFIER, StrictModel, TABLE_NAME, format_validation_error, read_yaml
from lakeforge.core.config_features import FeatureSelectionConfig, FeaturesConfig, PreprocessingConfig
from lakeforge.core.config_model import ModelConfig, ScoringConfig
from lakeforge.core.config_monitor import MonitoringConfig
from lakeforge.core.config_source import IngestConfig, SourceConfig
from lakeforge.core.errors import ConfigError
from lakeforge.core.tasks import UNSUPERVISED


class TablesConfig(StrictModel):
    bronze: str
    predictions: str
    leaderboard: str | None = None
    # Gold feature table: the transformed features keyed by the entity id, replaced each training
    # run (one Delta version per run); not written when absent.
    features: str | None = None
    # Feature-selection ranking (with selection configured); default feature_ranking_<name>.
    feature_ranking: str | None = None

    @field_validator("bronze", "predictions", "leaderboard", "features", "feature_ranking")
    @classmethod
    def _table_name(cls, v: str | None) -> str | None:
        if v is not None and not TABLE_NAME.match(v):
            raise ValueError("expected a table name like 'bronze_x' or 'db.bronze_x'")
        return v


class PipelineConfig(StrictModel):
    name: str
    # The main source: loaded into tables.bronze, which training and scoring read.
    source: SourceConfig
    # More named sources, each into its own table (``table`` required); `ingest --source NAME`.
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    key: str
    target: str | None = None  # required unless model.task is clustering or recommendation
    # binary targets: the class predicted as 1; null: 1/true/yes if present, else the minority class
    positive_class: str | int | bool | None = None
    tables: TablesConfig
    ingest: IngestConfig = IngestConfig()
    features: FeaturesConfig = FeaturesConfig()
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    selection: FeatureSelectionConfig = FeatureSelectionConfig()
    model: ModelConfig
    scoring: ScoringConfig = ScoringConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    # Set by the loader.
    file: Path = Field(default=Path("."), exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not IDENTIFIER.match(v):
            raise ValueError("expected an identifier (letters, digits, underscore)")
        return v

    @model_validator(mode="after")
    def _sources(self) -> "PipelineConfig":
        for name, src in self.sources.items():
            if not IDENTIFIER.match(name):
                raise ValueError(f"source name {name!r}: expected an identifier (letters, digits, underscore)")
            if name == "main":
                raise ValueError("source name 'main' is the pipeline's 'source'; pick another name")
            if not src.table:
                raise ValueError(f"sources.{name}.table: required (the bronze table this source loads into)")
        tables = [t for _, t, _ in self.ingest_plan()]
        dup = sorted({t for t in tables if tables.count(t) > 1})
        if dup:
            raise ValueError(f"two sources load into the same table {dup}; give each its own 'table'")
        return self

    def ingest_plan(self) -> list[tuple[str, str, SourceConfig]]:
        """(name, table, source) for every source: 'main' first, then the named ones."""
        main_mode = self.source.mode or self.ingest.mode
        main = self.source.model_copy(update={"mode": main_mode})
        plan = [("main", main.table or self.tables.bronze, main)]
        for name, src in self.sources.items():
            plan.append((name, src.table, src.model_copy(update={"mode": src.mode or "overwrite"})))
        return plan

    @model_validator(mode="after")
    def _target(self) -> "PipelineConfig":
        if self.target is None and self.model.task not in UNSUPERVISED:
            raise ValueError("target: required key is missing (or set model.task: clustering / recommendation)")
        return self

    @model_validator(mode="after")
    def _roles(self) -> "PipelineConfig":
        listed = set(self.features.numeric) | set(self.features.categorical)
        for role in ("key", "target"):
            if getattr(self, role) in listed:
                raise ValueError(f"the {role} column {getattr(self, role)!r} cannot also be a feature")
            if getattr(self, role) in self.features.derived:
                raise ValueError(f"features.derived.{getattr(self, role)}: the name is the {role} column; pick another name")
        return self

    @model_validator(mode="after")
    def _feature_roles(self) -> "PipelineConfig":
        prep, feats = self.preprocessing, self.features
        categorical, numeric = set(feats.categorical), set(feats.numeric)
        for col, kind in prep.types.items():
            if col in categorical:
                raise ValueError(f"preprocessing.types.{col}: a {kind} column becomes one numeric feature; "
                                 f"move {col!r} from features.categorical to features.numeric")
        encoded = {**{c: "ordinal" for c in prep.ordinal},
                   **{c: "target_encoding" for c in (prep.target_encoding.columns if prep.target_encoding else [])}}
        for col, key in encoded.items():
            if col in numeric:
                raise ValueError(f"preprocessing.{key}: {col!r} is listed in features.numeric; "
                                 f"encodings apply to categorical columns (list it in features.categorical)")
        numeric_keys = {"log": prep.log, "clip.columns": prep.clip.columns if prep.clip else [], "features.buckets": list(feats.buckets)}
        for key, cols in numeric_keys.items():
            for col in cols:
                if col in categorical:
                    raise ValueError(f"{key}: {col!r} is a categorical (text) feature; numeric transforms apply to "
                                     f"numeric features (list it in features.numeric or remove it from {key})")
        return self

    @property
    def scoring_input(self) -> str:
        """The table scoring reads (short name): ``scoring.input_table``, else the bronze table."""
        return self.scoring.input_table or self.tables.bronze

    @property
    def feature_ranking_table(self) -> str:
        """Where training writes the feature-selection ranking (default feature_ranking_<name>)."""
        return self.tables.feature_ranking or f"feature_ranking_{self.name}"

    @property
    def config_hash(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def load_pipeline(path: str | Path) -> PipelineConfig:
    path = Path(path)
    data = read_yaml(path)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc, PipelineConfig)) from None
    return cfg.model_copy(update={"file": path.resolve()})
