"""Names of the columns lakeforge itself adds, defined once."""

METADATA_COLUMNS = ("_ingested_at", "_source", "_run_id", "_run_date")  # every bronze row's provenance
OLD_METADATA_COLUMNS = ("_source_file",)  # written by earlier lakeforge versions (now _source)

LABEL_COL = "label"  # the numeric label that training derives from the target
WEIGHT_COL = "_weight"  # class weights (model.class_weight: balanced)
FOLD_COL = "_fold"  # the cross-validation fold of a training row
FEATURES_COL = "features"  # the assembled feature vector
