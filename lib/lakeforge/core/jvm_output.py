"""The driver JVM's standard error without XGBoost's per-round lines.

XGBoost4J prints every boosting round's training and validation loss, "Task 0 got rank 0" and
"early stopping after ..." from its native code to the JVM's standard error, whatever its
verbosity (it offers no switch): hundreds of lines per model search. When lakeforge starts the
driver JVM itself (not under spark-submit), it starts it as PySpark would, with the same options,
but with its standard error read by a thread that copies every other line to this process's
standard error (file descriptor 2, where the JVM's output went before) and drops those.
"""

from __future__ import annotations

import os
import re
import threading

# "[16:48:09] [12]\ttrain-rmse:..." / "[16:48:09] Task 0 got rank 0" / "[...] early stopping after 10 rounds ..."
XGBOOST_LINE = re.compile(rb"^\[\d\d:\d\d:\d\d\] (\[\d+\]\t|Task \d+ got rank \d+|early stopping after \d+ rounds)")


def launch_gateway_filtered(options: dict[str, str]) -> None:
    """Start the driver JVM with these spark-submit ``--conf`` options (the session builder's),
    XGBoost's lines filtered out of its standard error; nothing when a JVM is already running."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:  # noqa: SLF001 - pyspark's own check in _ensure_initialized
        return
    conf = SparkConf(loadDefaults=False)
    for key, value in options.items():
        conf.set(key, value)
    # the reader runs before the JVM starts: what it prints while starting (Ivy's resolution, say)
    # could otherwise fill the pipe and stop it before it hands over its port
    read_fd, write_fd = os.pipe()
    threading.Thread(target=copy_lines, args=(os.fdopen(read_fd, "rb"), 2), name="jvm-stderr", daemon=True).start()
    try:
        gateway = launch_gateway(conf, popen_kwargs={"stderr": write_fd})
    finally:
        os.close(write_fd)  # the JVM holds its own copy; the reader ends when the JVM does
    SparkContext._gateway = gateway  # noqa: SLF001 - what _ensure_initialized would set
    SparkContext._jvm = gateway.jvm  # noqa: SLF001


def copy_lines(stream, fd: int) -> None:
    """Copy ``stream``'s lines to file descriptor ``fd``, without XGBoost's lines (and the empty
    line it prints after each)."""
    after_dropped = False
    for line in iter(stream.readline, b""):
        if XGBOOST_LINE.match(line) or (after_dropped and not line.strip()):
            after_dropped = True
            continue
        after_dropped = False
        view = memoryview(line)
        while view:
            try:
                view = view[os.write(fd, view):]
            except OSError:  # our standard error is gone (the process is exiting): keep draining
                break
