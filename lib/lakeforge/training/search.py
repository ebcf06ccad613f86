"""The model search: every candidate (algorithm x grid point) fitted and scored on every fold.

All (fold, candidate) fits go to ONE thread pool, ``parallelism`` at a time; each fit is
evaluated with every metric in ONE aggregation (lakeforge.training.evaluation) and no sub-model
is kept. ``search: train_validation_split`` is one fold; ``halving: true`` fits every
candidate on the first fold and only the best third and the best of each algorithm on the
others (successive halving). A ``model.max_minutes`` deadline stops new algorithms from
starting (started ones finish their folds; the first always runs).

The loop itself needs no Spark: it is given the folds, what builds a candidate's estimator and
a function that evaluates a fitted model's predictions (see ``SearchSpec``).
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core.columns import FOLD_COL
from lakeforge.core.errors import error_text
from lakeforge.core.tasks import higher_is_better
from lakeforge.training import algorithms as models
from lakeforge.training import evaluation
from lakeforge.training.algorithms import Estimators
from lakeforge.training.early_stopping import rounds_used

PROGRESS_SECONDS = 20  # a long search reports a finished fit when nothing was said for this long

Fold = tuple[Any, Any, int]  # (training rows, validation rows, feature vector size)


@dataclass
class Candidate:
    algorithm: str
    params: dict
    fold_metrics: list[dict[str, float]] = field(default_factory=list)
    fold_evals: list[evaluation.Evaluation] = field(default_factory=list)
    fit_seconds: float = 0.0
    status: str = "ok"  # ok | skipped (time budget) | failed: <reason> | pruned after fold 1 (halving)
    selected_by: str = ""  # set on the winner: why it won
    rounds: list[int] = field(default_factory=list)  # early-stopped GBT: the boosting rounds kept per fold

    @property
    def label(self) -> str:
        return f"{self.algorithm} {json.dumps(self.params, sort_keys=True)}"

    def mean(self, metric: str) -> float:
        vals = [m[metric] for m in self.fold_metrics if metric in m and not math.isnan(m[metric])]
        return statistics.fmean(vals) if vals else float("nan")

    def std(self, metric: str) -> float:
        vals = [m[metric] for m in self.fold_metrics if metric in m and not math.isnan(m[metric])]
        return statistics.pstdev(vals) if len(vals) > 1 else 0.0 if vals else float("nan")


def candidates(algorithms: dict, task: str) -> list[Candidate]:
    """One candidate per point of each algorithm's grid (its default grid updated by the config's)."""
    out = []
    for name, grid in algorithms.items():
        full = dict(models.ALGORITHMS[name].grid_for(task))
        full.update(grid or {})
        out += [Candidate(name, point) for point in models.grid_points(full)]
    return out


def fold_frames(features: DataFrame, n_folds: int, num_features: int,
                fold_data: Callable[[int], Fold] | None = None) -> list[Fold]:
    """The search's folds: fold k trains on the rows of the other folds and is scored on its own.

    They are filters of the cached ``features``: the estimators keep their own cached copy of
    what they train on (blocks for linear models, binned points for trees), so a second cached
    copy per fold only costs memory (measured: 2M rows, logistic regression x3, one fold: 38 s
    with cached fold frames, 30 s without). ``fold_data(k)``, when given, returns fold k's
    cached (training, validation, vector size) instead (preprocessing refitted per fold)."""
    if fold_data is not None:
        return [fold_data(k) for k in range(n_folds)]
    return [(features.where(F.col(FOLD_COL) != k), features.where(F.col(FOLD_COL) == k), num_features)
            for k in range(n_folds)]


def spark_failed(exc: BaseException) -> bool:
    """Whether a fit failed because Spark itself did (out of memory, the context stopped), rather
    than for its parameters."""
    text = error_text(exc)
    return any(s in text for s in ("java.lang.OutOfMemoryError", "SparkContext was shut down",
                                   "Cannot call methods on a stopped SparkContext"))


@dataclass
class SearchSpec:
    """One search: what to fit, on which folds, and how."""

    candidates: list[Candidate]
    folds: list[Fold]
    task: str
    estimators: Estimators  # or any object with its build() and param_map()
    # a fitted model's predictions on a fold's validation rows -> their Evaluation
    evaluate: Callable[[Any], evaluation.Evaluation]
    parallelism: int = 1
    deadline: float | None = None  # on ``clock``: after it no new algorithm starts
    say: Callable[[str], None] = lambda _msg: None
    halving_metric: str | None = None  # model.halving: successive halving by this metric
    clock: Callable[[], float] = time.perf_counter


def search(spec: SearchSpec) -> None:
    """Fit and score every candidate on every fold; the results go into the candidates.

    All (fold, candidate) fits go to ONE thread pool, so Spark always has ``parallelism`` fits
    to schedule (on small data a fit is mostly driver-side job overhead; batches per algorithm
    and fold left the cores idle while the slowest fit of a batch finished). Results are stored
    per fold and appended in fold order, so the same data, config and seed give the same CV
    means.

    With ``halving_metric`` (``model.halving``), successive halving across folds: every
    candidate is fitted on the first fold, and only the best third by that metric (at least one)
    and the best of each algorithm are fitted on the other folds; the others are listed as
    pruned, with their first-fold score.
    """
    fits = _Fits(spec)
    n_folds, n = len(spec.folds), len(spec.candidates)
    order = [(k, ci) for k in range(n_folds) for ci in range(n)]
    if spec.halving_metric is None or n_folds < 2 or n < 3:
        fits.run(order)
    else:
        fits.run([(0, ci) for ci in range(n)])
        keep, why = halve(spec.candidates, {ci: fits.results[(0, ci)] for ci in range(n)}, spec.task,
                          spec.halving_metric)
        for ci in set(range(n)) - set(keep):  # pruned, or failed / skipped on fold 1
            for k in range(1, n_folds):
                fits.results[(k, ci)] = (None, why.get(ci, fits.results[(0, ci)][1]), 0.0)
        spec.say(f"halving: {len(keep)} of {n} candidate(s) go on to the other folds")
        fits.run([(k, ci) for k in range(1, n_folds) for ci in keep])
    fits.collect(order)


class _Fits:
    """The state of one search's fits, shared by the pool's threads."""

    def __init__(self, spec: SearchSpec):
        self.spec = spec
        n_folds = len(spec.folds)
        self.lock = threading.Lock()
        self.started: set[str] = set()
        self.failed: dict[int, str] = {}  # candidate index -> why its first failed fit failed
        self.results: dict[tuple[int, int], tuple] = {}  # (fold, candidate) -> (evaluation, status, seconds)
        self.rounds: dict[tuple[int, int], int] = {}  # (fold, candidate) -> rounds an early-stopped GBT kept
        self.done_per_fold = [0] * n_folds
        self.per_fold = [0] * n_folds  # fits submitted per fold
        self.t_start = spec.clock()
        self.last_said = self.t_start  # long searches: a line per finished fit at most every PROGRESS_SECONDS

    def run(self, batch: list[tuple[int, int]]) -> None:
        for k, _ in batch:
            self.per_fold[k] += 1
        with ThreadPoolExecutor(max_workers=self.spec.parallelism) as pool:
            for f in [pool.submit(self.fit_eval, k, ci) for k, ci in batch]:
                f.result()

    def fit_eval(self, k: int, ci: int) -> None:
        spec, c = self.spec, self.spec.candidates[ci]
        with self.lock:
            # Past the budget no new algorithm starts; started ones finish their folds, and
            # the first algorithm always runs so that there is a model.
            if (spec.deadline is not None and spec.clock() > spec.deadline and self.started
                    and c.algorithm not in self.started):
                self.results[(k, ci)] = (None, "skipped: time budget (model.max_minutes) reached", 0.0)
                return
            if ci in self.failed:  # it failed on another fold: the same reason, no second attempt
                self.results[(k, ci)] = (None, self.failed[ci], 0.0)
                return
            self.started.add(c.algorithm)
        train_k, valid_k, size = spec.folds[k]
        est = spec.estimators.build(c.algorithm, size)
        t_fit = spec.clock()
        try:
            m = est.fit(train_k, spec.estimators.param_map(est, c.params, size))
        except Exception as exc:  # noqa: BLE001 - an invalid combination (e.g. NB on negative values)
            if spark_failed(exc):  # not this candidate's fault: the search cannot go on
                raise
            why = f"failed: {(error_text(exc).splitlines() or [''])[0][:200]}"
            with self.lock:
                self.failed.setdefault(ci, why)
            self.results[(k, ci)] = (None, why, spec.clock() - t_fit)
            return
        secs = spec.clock() - t_fit
        rounds = rounds_used(m)
        if rounds is not None:
            self.rounds[(k, ci)] = rounds
        self.results[(k, ci)] = (spec.evaluate(m.transform(valid_k)), "ok", secs)
        self.progress(k, c, secs)

    def progress(self, k: int, c: Candidate, secs: float) -> None:
        """A line when a fold's fits are all done, or when nothing was said for PROGRESS_SECONDS."""
        n_folds = len(self.spec.folds)
        with self.lock:
            self.done_per_fold[k] += 1
            now = self.spec.clock()
            if self.done_per_fold[k] == self.per_fold[k]:
                self.spec.say(f"fold {k + 1}/{n_folds}: {self.per_fold[k]} candidate(s) done, "
                              f"{now - self.t_start:.1f} s into the search")
            elif now - self.last_said >= PROGRESS_SECONDS:
                self.spec.say(f"{sum(self.done_per_fold)}/{sum(self.per_fold)} fits done ({c.label} on fold {k + 1}: "
                              f"{secs:.1f} s), {now - self.t_start:.0f} s into the search")
            else:
                return
            self.last_said = now

    def collect(self, order: list[tuple[int, int]]) -> None:
        """Each candidate's fold metrics (in fold order: deterministic means), seconds and status."""
        skipped_said: set[str] = set()
        for k, ci in order:
            c = self.spec.candidates[ci]
            ev, status, secs = self.results[(k, ci)]
            c.fit_seconds += secs
            if c.status != "ok":
                continue
            if status != "ok":
                c.status = status
                if status.startswith("skipped") and c.algorithm not in skipped_said:
                    skipped_said.add(c.algorithm)
                    self.spec.say(f"time budget reached: {c.algorithm} skipped")
                continue
            c.fold_metrics.append(ev.metrics)
            if (k, ci) in self.rounds:
                c.rounds.append(self.rounds[(k, ci)])
            if self.spec.task == "binary":
                c.fold_evals.append(evaluation.Evaluation("binary", {}, bins=ev.bins))


def halve(candidates: list[Candidate], first: dict[int, tuple], task: str, metric: str) -> tuple[list[int], dict[int, str]]:
    """Successive halving after the first fold (``first``: candidate index -> (evaluation, status,
    seconds)): the indexes of the candidates that go on — the best third (at least one) of those
    that finished it, and the best of each algorithm (the one-standard-error rule may pick a
    simpler algorithm, so each needs its full CV) — and a reason for each one dropped."""
    scored = [(ci, ev.metrics[metric]) for ci, (ev, status, _) in first.items()
              if status == "ok" and not math.isnan(ev.metrics[metric])]
    hib = higher_is_better(task, metric)
    scored.sort(key=lambda x: (-x[1] if hib else x[1], x[0]))
    n_top = max(1, math.ceil(len(scored) / 3))
    keep = {ci for ci, _ in scored[:n_top]}
    best_of: dict[str, float] = {}
    for ci, v in scored:  # best first: the first seen of each algorithm is its best
        if candidates[ci].algorithm not in best_of:
            best_of[candidates[ci].algorithm] = v
            keep.add(ci)
    cut = scored[n_top - 1][1] if scored else math.nan
    side = "at least" if hib else "at most"
    why = {ci: (f"pruned after fold 1 (successive halving): {metric} {v:.4f}; the best third scored {side} {cut:.4f} "
                f"and the best {candidates[ci].algorithm} {best_of[candidates[ci].algorithm]:.4f}")
           for ci, v in scored if ci not in keep}
    # Finished but without a score (NaN): dropped too; failed / skipped ones keep their reason.
    for ci, (ev, status, _) in first.items():
        if status == "ok" and ci not in keep and ci not in why:
            why[ci] = f"pruned after fold 1 (successive halving): no {metric}"
    return sorted(keep), why
