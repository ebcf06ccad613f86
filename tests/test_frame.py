"""Problem framing: the card for the Telco data, leakage suspects, the zero-config run."""

import datetime as dt
import shutil

import pytest
import yaml

from conftest import TELCO_CSV
from lakeforge.app.cli import main
from lakeforge.core.config import load_pipeline
from lakeforge.core.frames import local_frame
from pyspark.sql import functions as F

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
    assert card.model.max_minutes == 60  # a time budget by default, as AutoML tools have
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


def test_leakage_of_numeric_columns_for_a_regression_target(spark):
    from lakeforge.profiling.frame import frame

    rows = [(f"k{i}", float(i), i * 2.0 + (i % 3) * 0.01, float((i * 7) % 11), i + 5.0, "abc"[i % 3], 3.0 * i)
            for i in range(200)]
    df = local_frame(spark, rows, "k string, x double, twice double, noise double, price_before double, g string, price double")
    card = frame(df, "price", {"format": "csv", "path": "x"}, "x")
    assert card.task == "regression" and card.key == "k"
    assert card.leakage == ["x: correlation +1.000 with the target", "twice: correlation +1.000 with the target",
                            "price_before: its name contains the target's"]


def test_leakage_of_numeric_columns_for_a_class_target(spark):
    """A class the target's own source number determines: a birth weight under 2,500 g (MASS's
    birthwt), a censoring date all survivors share (MASS's Aids2)."""
    from lakeforge.profiling.frame import frame

    rows = []
    for i in range(400):
        bwt = 1500 + (i * 37) % 3000
        died = i % 5 < 3
        rows.append((i, float(bwt), 11000 + (i * 13) % 500 if died else 11504, 15 + (i * 11) % 31, float((i * 7) % 11),
                     "1" if bwt < 2500 else "0", "D" if died else "A"))
    df = local_frame(spark, rows, "id int, bwt double, death int, age int, noise double, low string, status string")
    cylinders = F.when(F.col("id") == 5, F.lit("rotary")).otherwise((F.col("id") % 4 + 3).cast("string"))
    df = df.withColumn("cylinders", cylinders)  # text of numbers (numeric) with a word among them
    low = frame(df.drop("status"), "low", {"format": "csv", "path": "x"}, "x")
    assert [s.split(" in ")[0] for s in low.leakage] == ["bwt: its values (100 quantile bins) determine the target"]
    status = frame(df.drop("low"), "status", {"format": "csv", "path": "x"}, "x")
    assert [s.split(" in ")[0] for s in status.leakage] == ["death: its values (100 quantile bins) determine the target"]
    assert {c.name for c in status.columns if c.role == "numeric"} >= {"bwt", "age", "noise", "cylinders"}


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


def test_zero_config_run_frames_trains_and_scores(spark, overlay, settings, tmp_path, monkeypatch):
    from lakeforge.training import algorithms

    # the card leaves the search to the task's default algorithms; each searched here at the
    # first point of its default grid (3 candidates, not 10: the test is about the run, not the grid)
    defaults = algorithms.default_algorithms
    monkeypatch.setattr(algorithms, "default_algorithms", lambda task: {
        name: {param: values[:1] for param, values in grid.items()} for name, grid in defaults(task).items()})
    # no key column (like iris or wine): the key is the row id that ingest adds
    src = tmp_path / "flats.csv"
    lines = ["rooms,area,district,built,price"]
    for i in range(200):
        rooms, area = 1 + i % 4, 25 + (i * 17) % 100
        lines.append(f"{rooms},{area},{['old town', 'harbour'][i % 2]},2001-0{1 + i % 9}-15,"
                     f"{40 + 2.5 * area + 8 * rooms + (i % 2) * 15}")
    lines += lines[-1:] * 2  # the same flat three times
    src.write_text("\n".join(lines) + "\n")
    assert _main(overlay, "run", "--input", str(src), "--target", "price", "--run-date", "2026-06-01") == 0
    card = yaml.safe_load((settings.path(settings.reports_dir) / "flats" / "pipeline.yaml").read_text())
    assert card["model"]["task"] == "regression" and card["key"] == "row_id" and card["source"]["row_id"] == "row_id"
    assert card["features"]["dates"] == {"built": {"parts": ["year", "month", "day_of_week"]}}  # text dates
    n = spark.sql("SELECT count(*), count(DISTINCT row_id) FROM lakeforge.predictions_flats").first()
    assert tuple(n) == (202, 202)
    searched = spark.sql("SELECT DISTINCT algorithm FROM lakeforge.leaderboard_flats").collect()
    assert {r.algorithm for r in searched} == set(defaults("regression"))  # every default algorithm competed
    shutil.rmtree(settings.path(settings.reports_dir) / "flats")


def test_card_uses_bronzes_column_names_and_keeps_unique_measurements(spark, overlay, settings, tmp_path):
    src = tmp_path / "cars_named.csv"
    lines = ["Car ID,Марка,mileage km,Größe"]  # a Cyrillic name stays, accents are folded
    for i in range(300):
        mileage = "" if i % 40 == 0 else str(1000 + i * 373)  # nearly unique, not an ID
        lines.append(f"C{i:05d},{['vw', 'kia', 'bmw'][i % 3]},{mileage},{['small', 'mid', 'lux'][(i // 3) % 3]}")
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cars_named.yaml"
    assert _main(overlay, "frame", "--input", str(src), "--target", "Größe", "--output", str(out)) == 0
    text = out.read_text()
    assert "'Car ID' -> Car_ID, 'mileage km' -> mileage_km, 'Größe' -> Grosse" in text
    card = load_pipeline(out)
    assert card.key == "Car_ID" and card.features.numeric == ["mileage_km"] and card.features.categorical == ["Марка"]
    assert card.target == "Grosse"
    # the card's names are the bronze table's: ingest and its checks find the key
    assert _main(overlay, "ingest", str(out), "--run-date", "2026-06-01") == 0
    assert spark.table("lakeforge.bronze_cars_named").select("Car_ID", "mileage_km").count() == 300
    # --key / --target may name a column as in the data or as in bronze
    out2 = tmp_path / "cars_named2.yaml"
    assert _main(overlay, "frame", "--input", str(src), "--target", "Grosse", "--key", "Car ID", "--output", str(out2)) == 0
    assert load_pipeline(out2).key == "Car_ID"


def test_missing_value_markers_are_missing_in_the_card_and_in_bronze(spark, overlay, settings, tmp_path):
    """R's write.csv: NA for missing values and an unnamed row-name column (car::SLID's layout)."""
    src = tmp_path / "slid.csv"
    lines = ['"","wages","education","age","sex","region"']
    for i in range(300):
        wages = "NA" if i % 5 < 2 else f"{8 + (i * 37) % 200 / 10:.2f}"
        education = "NA" if i % 50 == 0 else f"{10 + i % 9}.{i % 10}"
        region = "NA" if i == 7 else f'"{1 + i % 4}"'  # a factor with levels 1-4, and one missing
        lines.append(f'"{i + 1}",{wages},{education},{18 + i % 47},"{"Male" if i % 2 else "Female"}",{region}')
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "slid.yaml"
    assert _main(overlay, "frame", "--input", str(src), "--target", "wages", "--output", str(out)) == 0
    card = load_pipeline(out)
    assert card.model.task == "regression" and card.target == "wages" and card.key == "c0"
    assert set(card.features.numeric) == {"education", "age"} and set(card.features.categorical) == {"sex", "region"}
    text = out.read_text()
    assert "# Task: regression" in text and "whole numbers in quotes in the file (a factor's levels" in text
    assert _main(overlay, "ingest", str(out), "--run-date", "2026-06-01") == 0
    bronze = spark.table("lakeforge.bronze_slid")
    assert dict(bronze.dtypes)["wages"] == "double" and dict(bronze.dtypes)["education"] == "double"
    assert bronze.count() == 300 and bronze.where("wages IS NULL").count() == 120
    assert bronze.where("education IS NULL").count() == 6
    assert not spark.catalog.tableExists("lakeforge.bronze_slid_quarantine") or \
        spark.table("lakeforge.bronze_slid_quarantine").count() == 0


def test_quoted_columns_are_those_a_writer_quoted_selectively(tmp_path):
    from lakeforge.profiling.sources import quoted_columns

    r_style = tmp_path / "r.csv"
    r_style.write_text('"","a","b","c"\n"1",2.5,"x","7"\n"2",NA,"y, z",NA\n"3",1,"say ""hi""","8"\n')
    assert quoted_columns(str(r_style), {"header": True}, ("NA",)) == {0, 2, 3}
    everything = tmp_path / "all.csv"  # a writer that quotes every value says nothing
    everything.write_text('"id","n"\n"1","2"\n"2","3"\n')
    assert quoted_columns(str(everything), {"header": True}) == set()
    semi = tmp_path / "semi.csv"
    semi.write_text('id;code\n1;"007"\n2;"008"\n')
    assert quoted_columns(str(semi), {"header": True, "sep": ";"}) == {1}
    assert quoted_columns(str(semi), {"header": True, "sep": ";", "multiLine": True}) == set()


def test_a_unique_integer_is_the_key_only_when_nothing_is_id_like(spark):
    from lakeforge.profiling.frame import frame
    from lakeforge.profiling.frame_columns import id_like_name

    assert [id_like_name(n) for n in ("customerID", "order_no", "Account Number", "mileage km", "paid", "idle")] == [
        True, True, True, False, False, False]
    rows = [(1000 + 7 * i, float(i % 5), "a" if i % 2 else "b") for i in range(100)]
    card = frame(local_frame(spark, rows, "income int, score double, y string"), "y", {"format": "csv", "path": "x"}, "x")
    assert card.key == "income" and "used as the key" in next(c.reason for c in card.columns if c.name == "income")
    rows = [(None if i == 3 else 1000 + 7 * i, "a" if i % 2 else "b") for i in range(100)]
    card = frame(local_frame(spark, rows, "income int, y string"), "y", {"format": "csv", "path": "x"}, "x")
    assert (card.key, card.row_id) == ("row_id", "row_id")  # a column with nulls is no key: ingest adds one


def test_constant_and_empty_columns_are_excluded(spark):
    from lakeforge.profiling.frame import frame

    rows = [(float(i), 1, None, "x" if i % 3 else None, "ab"[i % 2]) for i in range(50)]
    card = frame(local_frame(spark, rows, "v double, const int, empty string, flag string, y string"),
                 "y", {"format": "csv", "path": "x"}, "x")
    why = {c.name: (c.role, c.reason) for c in card.columns}
    assert why["const"] == ("excluded", "constant: one value in every row")
    assert why["empty"] == ("excluded", "always null")
    assert why["flag"][0] == "categorical"  # one value or null: the null says something


def test_numbers_with_thousands_separators_become_a_numeric_feature(spark, tmp_path):
    from lakeforge.features.plan import plan_features
    from lakeforge.profiling.card import to_yaml
    from lakeforge.profiling.frame import frame

    rows = [(i, f"{1000 + 37 * i:,}" if i % 9 else str(i), f"{i % 5},{i % 3}", "ab"[i % 2]) for i in range(60)]
    df = local_frame(spark, rows, "id int, area string, pair string, y string")
    card = frame(df, "y", {"format": "csv", "path": "x"}, "x")
    area = next(c for c in card.columns if c.name == "area")
    assert area.role == "excluded" and area.derived == {"area_num": {"expr": "try_cast(replace(`area`, ',', '') AS DOUBLE)", "role": "numeric"}}
    assert next(c for c in card.columns if c.name == "pair").role == "categorical"  # '3,5' is no grouped number
    (tmp_path / "x.yaml").write_text(to_yaml(card))
    pipe = load_pipeline(tmp_path / "x.yaml")
    assert pipe.features.derived_specs["area_num"].role == "numeric" and "area" in pipe.features.exclude
    assert pipe.key == "id"
    plan = plan_features(df, pipe.features, pipe.preprocessing, pipe.key, "y", "t")
    assert "area_num" in plan.numeric and "area" not in plan.numeric + plan.categorical
    values = [r[0] for r in df.selectExpr(pipe.features.derived_specs["area_num"].expr).collect()]
    assert values[:3] == [0.0, 1037.0, 1074.0] and None not in values


def test_dates_become_date_parts_free_text_its_length_and_an_end_date_is_a_leak(spark, tmp_path):
    import datetime as dt

    from lakeforge.features.plan import plan_features
    from lakeforge.profiling.card import to_yaml
    from lakeforge.profiling.frame import frame

    words = ["slow", "price", "support", "app", "crash", "love", "bill", "fast"]
    rows = []
    for i in range(80):
        signup = dt.date(2024, 1, 1) + dt.timedelta(days=7 * i + i % 5)
        churned = i % 3 == 0
        rows.append((f"C{i}", signup, dt.datetime(2025, 1, 1, i % 24, 30), f"{signup:%Y-%m-%d}",
                     signup + dt.timedelta(days=40) if churned else None,
                     " ".join(words[(i + k) % 8] for k in range(6 + i % 9)) + f" #{i}", "yes" if churned else "no"))
    df = local_frame(spark, rows, "customer_id string, signup date, last_seen timestamp, signup_text string, "
                                     "cancelled date, notes string, churn string")
    card = frame(df, "churn", {"format": "csv", "path": "x"}, "x")
    role = {c.name: (c.role, c.date_parts) for c in card.columns}
    assert role["signup"] == ("datetime", ["year", "month", "day_of_week"])
    assert role["last_seen"] == ("datetime", ["year", "month", "day_of_week", "hour"])
    assert role["signup_text"] == ("datetime", ["year", "month", "day_of_week"])  # text that parses as dates
    assert role["notes"][0] == "text"  # unique sentences are text, not an ID
    assert card.leakage == ["cancelled: whether it is empty determines the target in 100.0% of the rows"]
    (tmp_path / "x.yaml").write_text(to_yaml(card))
    pipe = load_pipeline(tmp_path / "x.yaml")
    assert {c: s.parts for c, s in pipe.features.dates.items()} == {
        "signup": ["year", "month", "day_of_week"], "last_seen": ["year", "month", "day_of_week", "hour"],
        "signup_text": ["year", "month", "day_of_week"]}
    assert pipe.features.text_length == pipe.features.text_tfidf == ["notes"] and pipe.features.exclude == ["cancelled"]
    plan = plan_features(df, pipe.features, pipe.preprocessing, pipe.key, "churn", "t")
    assert {"signup_year", "last_seen_hour", "signup_text_day_of_week", "notes_length"} <= set(plan.numeric)
    assert "notes" in plan.inputs
    assert not {"signup", "last_seen", "notes", "cancelled"} & set(plan.numeric + plan.categorical)


def test_a_nested_records_fields_become_derived_features(spark, tmp_path):
    from pyspark.sql import functions as F

    from lakeforge.profiling.card import to_yaml
    from lakeforge.profiling.frame import frame

    rows = [(i, (20 + i % 50, "NO" if i % 3 else "SE", [i]), ["x"] * (i % 4), "ab"[i % 2]) for i in range(60)]
    df = local_frame(spark, rows, "id int, user struct<age:int, country:string, tags:array<int>>, tags array<string>, y string")
    for fmt, age in (("json", "try_cast(get_json_object(`user`, '$.age') AS DOUBLE)"), ("parquet", "`user`.`age`")):
        card = frame(df, "y", {"format": fmt, "path": "x"}, "x")
        user = next(c for c in card.columns if c.name == "user")
        assert user.role == "excluded" and list(user.derived) == ["user_age", "user_country"], fmt  # not the array
        assert user.derived["user_age"] == {"expr": age, "role": "numeric"}
        assert user.derived["user_country"]["role"] == "categorical"
        tags = next(c for c in card.columns if c.name == "tags")  # a list: its length
        assert tags.role == "excluded" and list(tags.derived) == ["tags_count"], fmt
        # bronze keeps a JSON source's records and lists as JSON text, a Parquet source's as they are
        bronze = df.withColumn("user", F.to_json("user")).withColumn("tags", F.to_json("tags")) if fmt == "json" else df
        got = bronze.selectExpr(f"{age} AS age", f"{user.derived['user_country']['expr']} AS country",
                                f"{tags.derived['tags_count']['expr']} AS n").where("id = 3").first()
        assert (float(got["age"]), got["country"], got["n"]) == (23.0, "SE", 3), fmt
    # a list named in another script: its count is a valid feature name of the card
    card = frame(df.withColumnRenamed("tags", "теги"), "y", {"format": "parquet", "path": "x"}, "x")
    (tmp_path / "x.yaml").write_text(to_yaml(card))
    assert load_pipeline(tmp_path / "x.yaml").features.derived_specs["теги_count"].expr == "size(`теги`)"


def test_data_without_a_key_gets_row_ids_from_its_content(spark, overlay, settings, tmp_path, capsys):
    from lakeforge.core.errors import delimiter_hint

    # a ';'-delimited file (frame finds the delimiter) without any ID-like column
    src = tmp_path / "plants.csv"
    lines = ["width;height;kind"] + [f"{i % 7};{i % 5}.5;{'ab'[i % 2]}" for i in range(60)]
    lines += ["1;;c", ";1;c", "2;3.5;c", "2;3.5;c", "2;3.5;c"]  # nulls in two places; the same row three times
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "plants.yaml"
    assert _main(overlay, "frame", "--input", str(src), "--target", "kind", "--output", str(out)) == 0
    card = load_pipeline(out)
    assert card.source.options["sep"] == ";" and (card.key, card.source.row_id) == ("row_id", "row_id")
    assert "no ID-like column, so ingest adds row_id" in capsys.readouterr().out

    def ids():
        rows = spark.sql("SELECT width, height, kind, row_id FROM lakeforge.bronze_plants").collect()
        return {(r.width, r.height, r.kind, r.row_id) for r in rows}

    assert _main(overlay, "ingest", str(out), "--run-date", "2026-06-01") == 0
    first = ids()
    assert len(first) == len(lines) - 1 == len({r[3] for r in first})  # one id per row, all different
    same = sorted((r[3] for r in first if r[:3] == (2, 3.5, "c")), key=lambda i: (len(i), i))
    assert len(same[0]) == 32 and same[1:] == [f"{same[0]}-2", f"{same[0]}-3"]  # identical rows: numbered
    assert [r[3] for r in first if r[:3] == (1, None, "c")] != [r[3] for r in first if r[:3] == (None, 1, "c")]
    assert _main(overlay, "ingest", str(out), "--run-date", "2026-06-02") == 0
    assert ids() == first  # the same rows get the same ids on every load

    # read with ',' (no sep in the config): the message names the delimiter and the fix
    assert delimiter_hint(["a;b;c"]) == ";" and delimiter_hint(["a", "b"]) is None
    wrong = tmp_path / "plants_comma.yaml"
    wrong.write_text(out.read_text().replace("    sep: ;\n", "").replace("    sep: ';'\n", ""))
    assert "sep" not in load_pipeline(wrong).source.options
    assert _main(overlay, "ingest", str(wrong), "--run-date", "2026-06-01") == 2
    assert "looks delimited by ';', not ','; set the source's options.sep: ';'" in capsys.readouterr().err
    clash = tmp_path / "plants_clash.yaml"
    clash.write_text(out.read_text().replace("  row_id: row_id", "  row_id: Width"))
    assert _main(overlay, "ingest", str(clash), "--run-date", "2026-06-01") == 2
    assert "row_id: 'Width' is already a column of" in capsys.readouterr().err


def test_frame_reads_excel_json_lines_and_folders_and_finds_their_keys(spark, overlay, tmp_path, capsys):
    import json

    import openpyxl

    from lakeforge.profiling.sources import source_for

    rows = [{"id": 10_000 + i, "when": f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:00:00", "plan": "ab"[i % 2],
             "amount": round(i * 1.7, 1), "y": "yn"[i % 3 == 0]} for i in range(400)]
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    book = openpyxl.Workbook()
    book.active.append(list(rows[0]))
    for r in rows:
        book.active.append(list(r.values()))
    book.save(tmp_path / "events.xlsx")
    folder = tmp_path / "landing"
    folder.mkdir()
    for part in (0, 1):
        (folder / f"part{part}.csv").write_text(
            "id|plan|y\n" + "".join(f"{r['id']}|{r['plan']}|{r['y']}\n" for r in rows[part::2]))

    assert source_for(str(folder)) == {"format": "csv", "path": str(folder), "options": {"header": True, "inferSchema": True, "sep": "|"}}
    assert source_for(str(tmp_path / "events.xlsx"))["format"] == "excel"
    for path in (lines, tmp_path / "events.xlsx", folder):
        out = tmp_path / f"{path.stem}.yaml"
        assert _main(overlay, "frame", "--input", str(path), "--target", "y", "--output", str(out), "--force") == 0, path
        card = load_pipeline(out)
        # a bigint / text id counted well enough to be the key (approx. distinct count at 1 %);
        # ISO timestamps stored as text are a date column, not an ID although every value differs
        assert card.key == "id", path
        if path != folder:
            assert "when" in card.features.dates and "amount" in card.features.numeric, path
    # a tab-separated .tsv, and a Latin-1 file (Excel's CSV on Western Windows) with a gzipped twin
    tsv = tmp_path / "plans.tsv"
    tsv.write_text("id\tplan\ty\n" + "".join(f"{r['id']}\t{r['plan']}\t{r['y']}\n" for r in rows))
    assert source_for(str(tsv))["options"] == {"header": True, "inferSchema": True, "sep": "\t"}
    quoted = tmp_path / "tickets.csv"  # quoted values that span lines
    quoted.write_text('id,body,y\n1,"first line\nsecond, with a comma",a\n2,"short",b\n')
    assert source_for(str(quoted))["options"] == {"header": True, "inferSchema": True, "multiLine": True}
    latin = tmp_path / "kunden.csv"
    latin.write_bytes(("kunde,stadt,kündigt\n" + "".join(f"{r['id']},{'Köln' if r['plan'] == 'a' else 'Düsseldorf'},{r['y']}\n"
                                                           for r in rows)).encode("latin-1"))
    assert source_for(str(latin))["options"] == {"header": True, "inferSchema": True, "encoding": "ISO-8859-1"}
    out = tmp_path / "kunden.yaml"
    assert _main(overlay, "frame", "--input", str(latin), "--target", "kündigt", "--output", str(out), "--force") == 0
    card = load_pipeline(out)
    assert card.target == "kundigt" and card.features.categorical == ["stadt"]
    capsys.readouterr()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.parquet").write_text("not parquet")
    assert _main(overlay, "frame", "--input", str(junk), "--target", "y", "--output", str(tmp_path / "j.yaml")) == 2
    assert "cannot read" in (err := capsys.readouterr().err) and "a.parquet is not a Parquet file" in err


def test_a_key_is_exactly_unique_else_the_row_id_and_a_unique_key_gets_a_check(spark, settings, tmp_path):
    from lakeforge.ingest.job import ingest
    from lakeforge.ingest.quality import DataQualityError
    from lakeforge.profiling.card import to_yaml
    from lakeforge.profiling.frame import frame

    # 400 titles, 20 of them twice (5 % of the values): about one distinct value per row, ID-like, no key
    titles = [f"Song {i:04d}" for i in range(400)] + [f"Song {i:04d}" for i in range(0, 400, 20)]
    rows = [(t, float(i % 7), "ab"[i % 2]) for i, t in enumerate(titles)]
    df = local_frame(spark, rows, "title string, score double, y string")
    card = frame(df, "y", {"format": "csv", "path": "x"}, "songs")
    assert (card.key, card.row_id) == ("row_id", "row_id")
    title = next(c for c in card.columns if c.name == "title")
    assert title.role == "id" and title.reason.endswith("; not unique: 20 of 420 rows repeat a value, so not the key")
    text = to_yaml(card)
    assert "# Key: title is not unique: 20 of 420 rows repeat a value, so ingest adds row_id" in text
    assert "checks:" not in text  # the row id is unique by construction
    (tmp_path / "songs.yaml").write_text(text)
    assert load_pipeline(tmp_path / "songs.yaml").source.row_id == "row_id"

    # unique titles: the key, with a unique(key) check of severity error, so that a load repeating one fails
    src = tmp_path / "songs.csv"
    src.write_text("title,score,y\n" + "".join(f"{t},{s},{y}\n" for t, s, y in rows[:400]))
    card = frame(spark.read.option("header", True).csv(str(src)), "y", {"format": "csv", "path": str(src),
                                                                        "options": {"header": True}}, "songs_unique")
    assert (card.key, card.row_id) == ("title", None)
    out = tmp_path / "songs_unique.yaml"
    out.write_text(to_yaml(card))
    pipe = load_pipeline(out)
    [check] = pipe.source.checks
    assert (check.type, check.target_columns, check.severity, check.label) == ("unique", ["title"], "error", "unique(title)")
    [res] = ingest(spark, settings, pipe, "k1", dt.date(2026, 6, 1))
    assert res.rows_loaded == 400 and [c.passed for c in res.checks] == [True]
    src.write_text(src.read_text() + "Song 0007,1.0,a\n")
    with pytest.raises(DataQualityError, match=r"unique\(title\): 1 rows repeat a key"):
        ingest(spark, settings, pipe, "k2", dt.date(2026, 6, 2))
