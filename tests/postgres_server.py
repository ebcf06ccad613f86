"""A real, throw-away PostgreSQL server for tests, on 127.0.0.1 and a free port.

    with PostgresServer() as pg:
        pg.sql("CREATE TABLE t (id int)")
        pg.query("SELECT count(*) FROM t")       # [("0",)]
        spark.read.jdbc(pg.jdbc_url, "t", properties=pg.jdbc_properties())

It runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``, installed by
scripts/system_packages.sh) on a data folder under a new temporary folder: ``initdb`` with
``scram-sha-256`` password authentication for TCP connections (and ``trust`` on the private unix
socket, for the set-up), ``pg_ctl start``, then a database ``lakeforge_test`` owned by a user
``lakeforge`` with a random password. PostgreSQL refuses to run as root: as root, the folder is
given to the ``postgres`` system user and the server commands run through ``runuser``.
``stop()`` stops the server and removes the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

DATABASE = "lakeforge_test"
USER = "lakeforge"
SUPERUSER = "postgres"
INSTALL_HINT = "install them with scripts/system_packages.sh (Debian package postgresql)"


class PostgresSetupError(RuntimeError):
    """The server could not be set up; the message says why and what to run."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [d for d in found if (d / "pg_ctl").is_file() and (d / "postgres").is_file()]
    if not found:
        raise PostgresSetupError(f"PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: {INSTALL_HINT}")
    return max(found, key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)] or [0])


def find_psql(bin_dir: Path) -> str:
    psql = bin_dir / "psql"
    if psql.is_file():
        return str(psql)
    found = shutil.which("psql")
    if not found:
        raise PostgresSetupError(f"psql not found in {bin_dir} or on PATH: {INSTALL_HINT}")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server; the connection facts are attributes, the password is never in
    ``repr``."""

    host = "127.0.0.1"

    def __init__(self, database: str = DATABASE, user: str = USER, base_dir: str | None = None):
        self.database = database
        self.user = user
        self.password = secrets.token_urlsafe(18)
        self.port: int | None = None
        self.bin_dir = find_bin_dir()
        self.psql = find_psql(self.bin_dir)
        self.version = self.bin_dir.parent.name
        self._base_dir = base_dir
        self.folder: Path | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"PostgresServer({self.user}@{self.host}:{self.port}/{self.database}, PostgreSQL {self.version})"

    # connection facts -----------------------------------------------------------------------

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def jdbc_properties(self) -> dict[str, str]:
        """Options for Spark's JDBC source (``spark.read.jdbc(url, table, properties=...)``)."""
        return {"user": self.user, "password": self.password, "driver": "org.postgresql.Driver"}

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    # life cycle -----------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        self.folder = Path(tempfile.mkdtemp(prefix="lakeforge-pg-", dir=self._base_dir))
        try:
            self._prepare_folder()
            self._as_owner(
                [self.bin_dir / "initdb", "-D", self.data_dir, "-U", SUPERUSER, "--auth-local=trust",
                 "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
                what="initdb",
            )
            self._start_server()
            self.sql(
                f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}';\n"
                f"CREATE DATABASE {self.database} OWNER {self.user};",
                admin=True, database="postgres",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare_folder(self) -> None:
        self.socket_dir.mkdir()
        if os.geteuid() != 0:
            return
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresSetupError(
                f"running as root, and there is no 'postgres' system user to run the server as: {INSTALL_HINT}"
            ) from None
        for path in (self.folder, self.socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        # the postgres user must be able to reach the folder through its parents
        probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.folder)], capture_output=True)
        if probe.returncode != 0:
            raise PostgresSetupError(
                f"the postgres user cannot write to {self.folder} (a parent folder is private?): "
                "set TMPDIR to a world-traversable folder such as /tmp"
            )

    def _start_server(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "30",
            "shared_buffers": "32MB",
            "fsync": "off",  # a test server: durability does not matter, speed does
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_min_messages": "warning",
        }
        last = ""
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            conf = {**settings, "port": str(self.port)}
            with open(self.data_dir / "postgresql.auto.conf", "w") as f:
                f.writelines(f"{k} = {v}\n" for k, v in conf.items())
            done = self._as_owner(
                [self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "60", "start"],
                what="pg_ctl start", check=False,
            )
            if done.returncode == 0:
                self._started = True
                return
            last = self._log_tail()
            if "could not bind" not in last and "Address already in use" not in last:
                break
        raise PostgresSetupError(f"PostgreSQL did not start on 127.0.0.1:{self.port}: {done.stdout}{done.stderr}\n{last}")

    def stop(self) -> None:
        if self._started:
            done = self._as_owner([self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "-t", "30", "stop"],
                                  what="pg_ctl stop", check=False)
            if done.returncode != 0:
                self._kill_postmaster()
            self._started = False
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _kill_postmaster(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, 9)  # the server this object started
        except ProcessLookupError:
            pass

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # SQL ------------------------------------------------------------------------------------

    def sql(self, text: str, *, admin: bool = False, database: str | None = None, check: bool = True,
            password: str | None = None) -> subprocess.CompletedProcess:
        """Run SQL with psql (stops at the first error): as ``lakeforge`` over TCP with its
        password (scram-sha-256), or with ``admin=True`` as the superuser over the unix socket.
        ``password`` overrides the password (to test a wrong one). The SQL goes through stdin and
        the password through PGPASSWORD, so neither is on a command line."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "10"
        if admin:
            target = ["-h", str(self.socket_dir), "-U", SUPERUSER]
        else:
            target = ["-h", self.host, "-U", self.user]
            env["PGPASSWORD"] = self.password if password is None else password
        cmd = [self.psql, *target, "-p", str(self.port), "-d", database or self.database, "-X", "-q",
               "-v", "ON_ERROR_STOP=1", "-A", "-t", "-F", "\t", "-f", "-"]
        done = subprocess.run(cmd, input=text, capture_output=True, text=True, env=env, timeout=300)
        if check and done.returncode != 0:
            raise PostgresSetupError(f"psql failed (exit {done.returncode}) on {self!r}: {done.stderr.strip()}")
        return done

    def query(self, text: str, **kwargs) -> list[tuple[str, ...]]:
        """The rows of one query, as tuples of strings (NULL is '')."""
        out = self.sql(text, **kwargs).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    # helpers --------------------------------------------------------------------------------

    def _as_owner(self, cmd: list, what: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a server command as the folder's owner: via runuser as root, directly otherwise."""
        cmd = [str(c) for c in cmd]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.folder, env=env, timeout=180,
                              stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise PostgresSetupError(f"{what} failed (exit {done.returncode}): {done.stdout}{done.stderr}".strip())
        return done

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
