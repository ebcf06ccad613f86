"""The SQL commands: ``lakeforge sql`` (a query or an interactive prompt), ``sql-server`` (the
Spark Thrift Server over the project's tables) and ``tables`` (the database's listing)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from lakeforge.app import runner
from lakeforge.app.console import err, error, out
from lakeforge.app.runner import Context
from lakeforge.core.errors import LakeforgeError


@click.command("sql")
@click.argument("query", required=False)
@click.option("--limit", default=100, show_default=True, help="Print at most this many rows.")
@click.option("--write", is_flag=True, help="Allow statements that change tables (INSERT, DELETE, DROP, ALTER...).")
@click.pass_obj
def sql_cmd(ctx: Context, query: str | None, limit: int, write: bool) -> None:
    """Run a SQL QUERY against the project's catalog and print the result as a table; without
    QUERY, open an interactive prompt (statements end with ';', quit with Ctrl-D or 'exit').

    Tables are addressed by name, e.g. lakeforge.predictions_telco. Statements that may change
    tables (DROP, DELETE, INSERT, UPDATE, MERGE, ALTER, CREATE TABLE, OPTIMIZE, VACUUM...) are
    refused unless --write is given; queries, SHOW, DESCRIBE, SET and temporary views always run.
    """
    if query is not None:
        runner.refuse_unless_write(query, write)  # before Spark starts
    settings = ctx.settings
    with runner.session(settings) as spark:
        spark.catalog.setCurrentDatabase(settings.catalog.database)
        if query is not None:
            _run_sql(spark, query, limit)
            return
        err.print(f"lakeforge SQL on database {settings.catalog.database}; end statements with ';', Ctrl-D quits")
        buffer: list[str] = []
        while True:
            try:
                line = input("lakeforge> " if not buffer else "       ...> ")
            except EOFError:
                break
            if not buffer and line.strip().lower() in {"exit", "quit", "exit;", "quit;"}:
                break
            buffer.append(line)
            if line.rstrip().endswith(";"):
                statement = "\n".join(buffer).rstrip().rstrip(";")
                buffer = []
                try:
                    runner.refuse_unless_write(statement, write)
                    _run_sql(spark, statement, limit)
                except LakeforgeError as exc:  # a typo or a refused statement must not end the session
                    error(str(exc))


def _run_sql(spark, query: str, limit: int) -> None:
    columns, rows = runner.sql_rows(spark, query, limit)
    table = Table(show_lines=False)
    for name in columns:
        table.add_column(name)
    for row in rows[:limit]:
        table.add_row(*(_sql_text(v) for v in row))
    out.print(table)
    more = " (more rows not shown; raise --limit)" if len(rows) > limit else ""
    err.print(f"{min(len(rows), limit)} row(s){more}")


def _sql_text(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@click.command("sql-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless you mean otherwise).")
@click.option("--port", default=10000, show_default=True, type=click.IntRange(1, 65535), help="HiveServer2 (Thrift/JDBC) port.")
@click.pass_obj
def sql_server_cmd(ctx: Context, host: str, port: int) -> None:
    """Serve the project's tables over JDBC/ODBC (Spark Thrift Server, HiveServer2 protocol).

    BI tools and beeline connect with jdbc:hive2://HOST:PORT. Needs a shared metastore
    (scripts/metastore.sh start, then --env shared) so jobs can keep writing meanwhile.
    Runs in the foreground until interrupted.
    """
    import os

    from lakeforge.core.spark import spark_home

    settings = ctx.settings
    cmd = runner.sql_server_command(settings, host, port)
    home = spark_home()
    err.print(f"Spark Thrift Server on jdbc:hive2://{host}:{port} (database {settings.catalog.database}); Ctrl-C stops it")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["SPARK_HOME"] = home
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)


@click.command("tables")
@click.pass_obj
def tables_cmd(ctx: Context) -> None:
    """List the tables registered in the project's database."""
    settings = ctx.settings
    with runner.session(settings) as spark:
        listing = spark.catalog.listTables(settings.catalog.database)
        table = Table(title=f"Tables in {settings.catalog.database}")
        table.add_column("table")
        table.add_column("type")
        for t in listing:
            table.add_row(f"{settings.catalog.database}.{t.name}", t.tableType)
        out.print(table)
