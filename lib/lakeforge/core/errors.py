"""Named exceptions. Each message says what is wrong, where, and how to fix it.

The CLI prints a LakeforgeError as one line and exits with its ``exit_code``; anything else is
an unexpected failure (exit 1, traceback only with ``--debug``).
"""

from __future__ import annotations

import re


class LakeforgeError(Exception):
    """A failure the user can fix; the message is shown as is."""

    exit_code = 2


class ConfigError(LakeforgeError):
    """A configuration file is missing, unreadable or invalid."""


class InputDataError(LakeforgeError):
    """The input data cannot be used as configured (missing path, missing column, empty...)."""


class MissingColumnError(InputDataError):
    """A configured column is absent from a DataFrame."""

    def __init__(self, what: str, missing: list[str], available: list[str]):
        self.missing = missing
        shown = ", ".join(available[:30]) + (" ..." if len(available) > 30 else "")
        super().__init__(
            f"{what}: column(s) {', '.join(repr(c) for c in missing)} not found; "
            f"available columns: {shown}. Fix the column name in the pipeline config."
        )


def wrong_delimiter(sep: str) -> str:
    return (f"The data has a single column whose name contains {sep!r}: the file looks delimited by {sep!r}, "
            f"not ','; set the source's options.sep: {sep!r}.")


def delimiter_hint(columns: list[str]) -> str | None:
    """';', tab or '|' when a CSV was read with the wrong delimiter (one column named like 'a;b;c')."""
    if len(columns) != 1:
        return None
    counts = {d: columns[0].count(d) for d in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


class ModelNotFoundError(LakeforgeError):
    """The registry has no model version for the requested name / alias / version."""


class RuntimeSetupError(LakeforgeError):
    """The runtime is missing something (jars, a metastore lock held by another process...)."""


class SourceError(InputDataError):
    """A source (HTTP API, database) is unreachable or answers with unusable data; the message
    names the URL or host:port, never a password or token."""


def out_of_memory_hint(exc: BaseException, jvm_exit_code: int | None = None) -> str | None:
    """One line for a Spark job that failed with java.lang.OutOfMemoryError, naming the setting to
    raise; None for anything else. The Java stack trace in the Py4J error's text says so, or the
    driver JVM's exit code 52 (Spark's exit code for out of memory: in local mode the JVM exits
    and the error's text may name only a later task's failure)."""
    text = chain_text(exc)
    if "java.lang.OutOfMemoryError" in text:
        kind = text.split("java.lang.OutOfMemoryError", 1)[1].lstrip(": ").splitlines()[0].strip() or "out of memory"
        detail = f"java.lang.OutOfMemoryError: {kind}"
        in_driver = "executor driver" in text or "Lost task" not in text  # local mode: the driver runs the tasks
    elif jvm_exit_code == SPARK_EXIT_OOM:  # the exit code is the driver JVM's
        detail, in_driver = "its JVM exited with Spark's out-of-memory code 52", True
    else:
        return None
    if in_driver:
        fix = "raise spark.driver_memory in the settings (e.g. a --conf file with spark: {driver_memory: 8g})"
        where = "the driver"
    else:
        fix = "raise spark.conf.spark.executor.memory in the settings, or give the job more executors"
        where = "an executor"
    return f"Spark ran out of memory in {where} ({detail}): {fix}, then rerun the same command."


SPARK_EXIT_OOM = 52  # org.apache.spark.util.SparkExitCode.OOM


def error_text(exc: BaseException) -> str:
    """``str(exc)``; for a Py4J error whose JVM is gone (its text comes from the JVM), its own message."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001
        return str(getattr(exc, "errmsg", "") or type(exc).__name__)


def jvm_gone_hint(jvm_exit_code: int | None) -> str | None:
    """One line for a Spark JVM that ended while the command ran (other than out of memory)."""
    if jvm_exit_code is None:
        return None
    how = f"was killed (signal {-jvm_exit_code})" if jvm_exit_code < 0 else f"exited with code {jvm_exit_code}"
    return (f"Spark's JVM {how} while the command ran (the lines above may say why; the kernel's "
            "out-of-memory killer logs to dmesg); Delta commits are atomic, so each table holds its old rows or its "
            "new ones: rerun the same command.")


def chain_text(exc: BaseException) -> str:
    """The texts of ``exc`` and of the exceptions it was raised from or while handling."""
    texts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts.append(error_text(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


def server_gone_hint(exc: BaseException) -> str | None:
    """One line for an MLflow tracking server that stopped answering while a command ran (MLflow's
    'API request to URL failed with exception ... Max retries exceeded'); None for anything else.
    The URL is shown without its query and credentials."""
    text = chain_text(exc)
    seen = re.search(r"API request to (\S+?)/api/\S* failed with exception", text)
    if not seen or not any(s in text for s in ("Max retries exceeded", "Connection refused", "ConnectionError")):
        return None
    server = re.sub(r"//[^/@]*@", "//", seen.group(1))
    reason = "connection refused" if "Connection refused" in text else "no answer"
    return (f"MLflow tracking server {server} stopped answering while the command ran ({reason}); what was "
            "registered before stays consistent (an alias only ever points at a complete model version): "
            "start the server, then rerun the same command for the same run date.")


def metastore_gone_hint(exc: BaseException) -> str | None:
    """One line for a metastore server (Derby's network server) that stopped answering while a
    command ran: Derby's client says 'Error connecting to server HOST on port N' (the port in the
    JVM's locale, e.g. 37,161); None for anything else."""
    seen = re.search(r"Error connecting to server (\S+) on port ([\d,.]+?)\.? with message", chain_text(exc))
    if not seen:
        return None
    port = re.sub(r"\D", "", seen.group(2))
    return (f"the metastore server at {seen.group(1)}:{port} stopped answering while the command ran; Delta commits "
            "are atomic, so each table holds its old rows or its new ones: start it with scripts/metastore.sh start, "
            "then rerun the same command.")
