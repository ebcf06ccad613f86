"""Problem framing: the card for the Telco data, leakage suspects, the zero-config run."""

import shutil

import pytest
import yaml

from conftest import TELCO_CSV
from lakeforge.cli import main
from lakeforge.config import load_pipeline

pytestmark = pytest.mark.slow


def _main(overlay, *args):
    return main(["--conf", str(overlay), *args])


def test_telco_card(spark, overlay, tmp_path, capsys):
    out = tmp_path / "card.yaml"
    assert _main(overlay, "frame", "--input", str(TELCO_CSV), "--target", "Churn", "--output", str(out)) == 0
    text = out.read_text()
    assert "# Task: binary (the target has exactly 2 distinct values)." in text
    assert "# Metric: roc_auc (balanced enough: the minority class is 26.5% of the rows)." in text
    assert "# Leakage suspects: none found." in text
    card = load_pipeline(out)  # the card is a valid pipeline config
    assert (card.key, card.target, card.positive_class, card.model.task, card.model.metric) == (
        "customerID", "Churn", "Yes", "binary", "roc_auc")
    assert set(card.features.numeric) == {"tenure", "MonthlyCharges", "TotalCharges"}  # TotalCharges is text
    assert "SeniorCitizen" in card.features.categorical and "Contract" in card.features.categorical
    assert "Problem card: telco_customer_churn" in capsys.readouterr().out
    # an existing file is not overwritten without --force
    assert _main(overlay, "frame", "--input", str(TELCO_CSV), "--target", "Churn", "--output", str(out)) == 2


def test_leakage_suspects_are_named_and_excluded(spark, overlay, tmp_path):
    src = tmp_path / "leaky.csv"
    lines = ["id,amount,region,churn_copy,status,label"]
    for i in range(300):
        label = "yes" if i % 3 == 0 else "no"
        status = f"closed{i % 7}" if label == "yes" else f"open{i % 5}"  # decided by the label
        lines.append(f"{i},{i * 1.5},{['n', 's', 'e'][(i // 2) % 3]},{label},{status},{label}")
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "leaky.yaml"
    assert _main(overlay, "frame", "--input", str(src), "--target", "label", "--output", str(out)) == 0
    text = out.read_text()
    assert "LEAKAGE SUSPECTS" in text
    assert "status: its levels determine the target in 100.0% of the rows" in text
    card = load_pipeline(out)
    assert {"churn_copy", "status"} <= set(card.features.exclude)
    assert "region" in card.features.categorical and "amount" in card.features.numeric
    assert card.key == "id" and card.positive_class == "yes"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--target", "Nope"], "target column 'Nope' not found; available columns: customerID"),
        (["--target", "Churn", "--key", "nokey"], "key column 'nokey' not found"),
    ],
)
def test_frame_bad_input(spark, overlay, tmp_path, capsys, args, expected):
    assert _main(overlay, "frame", "--input", str(TELCO_CSV), "--output", str(tmp_path / "x.yaml"), *args) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_zero_config_run_frames_trains_and_scores(spark, overlay, settings, tmp_path):
    src = tmp_path / "flats.csv"
    lines = ["flat_id,rooms,area,district,built,price"]
    for i in range(200):
        rooms, area = 1 + i % 4, 25 + (i * 17) % 100
        lines.append(f"F{i:05d},{rooms},{area},{['old town', 'harbour'][i % 2]},2001-0{1 + i % 9}-15,"
                     f"{40 + 2.5 * area + 8 * rooms + (i % 2) * 15}")
    src.write_text("\n".join(lines) + "\n")
    assert _main(overlay, "run", "--input", str(src), "--target", "price", "--run-date", "2026-06-01") == 0
    card = yaml.safe_load((settings.path(settings.reports_dir) / "flats" / "pipeline.yaml").read_text())
    assert card["model"]["task"] == "regression" and card["key"] == "flat_id"
    assert "built" in card["features"]["exclude"]  # a date: excluded until date features exist
    n = spark.sql("SELECT count(*), count(DISTINCT flat_id) FROM lakeforge.predictions_flats").first()
    assert tuple(n) == (200, 200)
    shutil.rmtree(settings.path(settings.reports_dir) / "flats")


def test_card_uses_bronzes_column_names_and_keeps_unique_measurements(spark, overlay, settings, tmp_path):
    src = tmp_path / "cars_named.csv"
    lines = ["Car ID,make,mileage km,segment"]
    for i in range(300):
        mileage = "" if i % 40 == 0 else str(1000 + i * 373)  # nearly unique, not an ID
        lines.append(f"C{i:05d},{['vw', 'kia', 'bmw'][i % 3]},{mileage},{['small', 'mid', 'lux'][(i // 3) % 3]}")
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cars_named.yaml"
    assert _main(overlay, "frame", "--input", str(src), "--target", "segment", "--output", str(out)) == 0
    text = out.read_text()
    assert "'Car ID' -> Car_ID, 'mileage km' -> mileage_km" in text
    card = load_pipeline(out)
    assert card.key == "Car_ID" and card.features.numeric == ["mileage_km"] and card.features.categorical == ["make"]
    # the card's names are the bronze table's: ingest and its checks find the key
    assert _main(overlay, "ingest", str(out), "--run-date", "2026-06-01") == 0
    assert spark.table("lakeforge.bronze_cars_named").select("Car_ID", "mileage_km").count() == 300
    # --key / --target may name a column as in the data or as in bronze
    out2 = tmp_path / "cars_named2.yaml"
    assert _main(overlay, "frame", "--input", str(src), "--target", "segment", "--key", "Car ID", "--output", str(out2)) == 0
    assert load_pipeline(out2).key == "Car_ID"


def test_a_unique_integer_is_the_key_only_when_nothing_is_id_like(spark):
    from lakeforge.frame import frame, id_like_name

    assert [id_like_name(n) for n in ("customerID", "order_no", "Account Number", "mileage km", "paid", "idle")] == [
        True, True, True, False, False, False]
    rows = [(1000 + 7 * i, float(i % 5), "a" if i % 2 else "b") for i in range(100)]
    card = frame(spark.createDataFrame(rows, "income int, score double, y string"), "y", {"format": "csv", "path": "x"}, "x")
    assert card.key == "income" and "used as the key" in next(c.reason for c in card.columns if c.name == "income")
    rows = [(None if i == 3 else 1000 + 7 * i, "a" if i % 2 else "b") for i in range(100)]
    with pytest.raises(Exception, match="no ID-like column"):  # a column with nulls is no key
        frame(spark.createDataFrame(rows, "income int, y string"), "y", {"format": "csv", "path": "x"}, "x")
