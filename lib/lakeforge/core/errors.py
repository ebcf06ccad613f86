"""Named exceptions. Each message says what is wrong, where, and how to fix it.

The CLI prints a LakeforgeError as one line and exits with its ``exit_code``; anything else is
an unexpected failure (exit 1, traceback only with ``--debug``).
"""

from __future__ import annotations


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
