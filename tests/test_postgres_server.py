"""The real PostgreSQL server of tests/postgres_server.py, and Spark reading it over JDBC (the
PostgreSQL driver jar comes from jars/ through the project's session factory)."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType

TABLE = "pg_server_numbers"  # the postgres fixture is shared by the session: own table names


@pytest.fixture(scope="module")
def numbers(postgres):
    postgres.sql(
        f"DROP TABLE IF EXISTS {TABLE};\n"
        f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, doubled bigint NOT NULL, label text);\n"
        f"INSERT INTO {TABLE} SELECT g, 2 * g, CASE WHEN g % 100 = 0 THEN NULL ELSE 'row ' || g END "
        "FROM generate_series(1, 1000) AS g;"
    )
    yield TABLE
    postgres.sql(f"DROP TABLE IF EXISTS {TABLE};")


def read_jdbc(spark, postgres, table, **options):
    reader = spark.read.format("jdbc").option("url", postgres.jdbc_url).option("dbtable", table)
    # jdbc_properties() names the driver class: without it Spark answers "No suitable driver" (the
    # jar comes through spark.jars, which java.sql.DriverManager does not search by URL).
    for key, value in {**postgres.jdbc_properties(), **options}.items():
        if value is not None:
            reader = reader.option(key, value)
    return reader.load()


def test_the_server_uses_password_auth_on_127_0_0_1(postgres, numbers):
    assert postgres.jdbc_url == f"jdbc:postgresql://127.0.0.1:{postgres.port}/lakeforge_test"
    assert postgres.password not in repr(postgres)
    assert postgres.query(f"SELECT count(*), sum(id), sum(doubled) FROM {numbers}") == [("1000", "500500", "1001000")]
    rules = postgres.query("SELECT type, address, auth_method FROM pg_hba_file_rules ORDER BY line_number", admin=True)
    assert ("host", "127.0.0.1", "scram-sha-256") in rules
    assert {r[2] for r in rules if r[0] == "host"} == {"scram-sha-256"}
    assert postgres.query("SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'lakeforge'", admin=True) == [
        ("SCRAM-SHA-256$",)]
    assert postgres.query("SHOW listen_addresses") == [("127.0.0.1",)]
    bad = postgres.sql("SELECT 1", password="not-the-password", check=False)
    assert bad.returncode != 0 and 'password authentication failed for user "lakeforge"' in bad.stderr


def test_spark_reads_the_table_over_jdbc_in_four_partitions(spark, postgres, numbers):
    df = read_jdbc(spark, postgres, numbers, partitionColumn="id", lowerBound=1, upperBound=1001, numPartitions=4)
    # (compared without the JDBC column metadata Spark attaches to each field)
    assert [(f.name, f.dataType, f.nullable) for f in df.schema] == [
        ("id", IntegerType(), True), ("doubled", LongType(), True), ("label", StringType(), True)]
    assert df.rdd.getNumPartitions() == 4
    row = df.agg(F.count("*"), F.sum("id"), F.sum("doubled"), F.count("label")).first()
    assert tuple(row) == (1000, 500500, 1001000, 990)
    # stride (1001 - 1) / 4 = 250: id < 251, [251, 501), [501, 751), id >= 751
    per_partition = {r[0]: r[1] for r in df.groupBy(F.spark_partition_id()).count().collect()}
    assert per_partition == {0: 250, 1: 250, 2: 250, 3: 250}


def test_a_wrong_password_fails_and_spark_does_not_repeat_the_password(spark, postgres, numbers):
    wrong = "Wrong-Pa55word-7f3e"
    with pytest.raises(Exception) as err:
        read_jdbc(spark, postgres, numbers, password=wrong).count()
    message = str(err.value)
    print(f"\n--- Spark's error for a wrong password ---\n{message[:3000]}")
    assert 'password authentication failed for user "lakeforge"' in message
    assert wrong not in message
    assert postgres.password not in message
    # nor when the wrong password is in the JDBC URL
    with pytest.raises(Exception) as err:
        read_jdbc(spark, postgres, numbers, url=f"{postgres.jdbc_url}?password={wrong}", password=None).count()
    assert 'password authentication failed for user "lakeforge"' in str(err.value) and wrong not in str(err.value)


def test_other_jdbc_errors_do_not_repeat_the_password(spark, postgres, numbers):
    # a missing table (the password is right), and a port nothing listens on
    with pytest.raises(Exception) as missing:
        read_jdbc(spark, postgres, "no_such_table").count()
    assert "no_such_table" in str(missing.value)
    with pytest.raises(Exception) as refused:
        read_jdbc(spark, postgres, numbers, url=f"jdbc:postgresql://127.0.0.1:1/{postgres.database}").count()
    for err in (missing, refused):
        print(f"\n--- Spark's error ---\n{str(err.value)[:2000]}")
        assert postgres.password not in str(err.value)
    assert "127.0.0.1:1" in str(refused.value)


def test_missing_binaries_fail_with_the_install_hint(monkeypatch):
    import postgres_server

    monkeypatch.setattr(postgres_server.glob, "glob", lambda pattern: [])
    with pytest.raises(postgres_server.PostgresSetupError, match=r"scripts/system_packages\.sh"):
        postgres_server.PostgresServer()
