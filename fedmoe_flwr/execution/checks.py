"""Pass/fail verdicts: run each answer against its task in the sandbox.

A Python answer passes when its code and then the task's tests run to their
end in one sandboxed process.  An SQL answer passes when its first statement,
a query, returns the task's expected rows after the task's setup, compared by
the rules of :func:`compare_rows` (documented in ``docs/evaluation.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .answers import first_statement, python_from_answer, sql_from_answer, statement_keyword
from .sandbox import DEFAULT_LIMITS, Limits, run_python, run_sql
from .tasks import PythonTask, SqlTask, Task

REL_TOL = 1e-6  # floats: relative tolerance ...
ABS_TOL = 1e-6  # ... or absolute, whichever is larger (math.isclose)
MATCHING_ROWS = 400  # unordered rows that fail the sorted pairing get an exact matching up to this
QUERY_KEYWORDS = ("SELECT", "WITH", "VALUES")


@dataclass(frozen=True)
class Verdict:
    """Whether an answer passed its task, and a short reason ("ok", "wrong rows: ...")."""

    passed: bool
    reason: str


def check_answer(task: Task, answer: str, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """Judge one answer by running it.

    Parameters
    ----------
    task : SqlTask or PythonTask
        What the answer should do.
    answer : str
        The model's reply; its code is found by :func:`python_from_answer`
        or :func:`sql_from_answer` (then its first statement), both built on
        :func:`extract_code`.
    limits : Limits
        Time, memory and output bounds of the sandboxed run.

    Returns
    -------
    Verdict
        Never raises for a bad answer: a crash, timeout or hostile answer is
        a failed verdict with its reason.
    """
    if isinstance(task, SqlTask):
        return _check_sql(task, answer, limits)
    if isinstance(task, PythonTask):
        code = python_from_answer(answer)
        if not code.strip():
            return Verdict(False, "no code in answer")
        result = run_python(code, limits, tests=task.tests)
        return Verdict(result.ok, result.reason)
    raise TypeError(f"not a task: {type(task).__name__}")


def _check_sql(task: SqlTask, answer: str, limits: Limits) -> Verdict:
    code = sql_from_answer(answer)
    if not code.strip():
        return Verdict(False, "no code in answer")
    statement = first_statement(code)
    if statement is None:
        return Verdict(False, "no SQL statement in answer")
    keyword = statement_keyword(statement)
    if keyword not in QUERY_KEYWORDS:
        return Verdict(False, f"not a query: the first statement starts with "
                              f"{keyword or repr(statement[:20])}, not SELECT")
    result = run_sql(task.setup, statement, limits)
    if result.rows is None:
        return Verdict(False, result.run.reason)
    return compare_rows(result.rows, task.expected, task.ordered, columns=result.columns)


def check_answers(pairs: Sequence[tuple[Task, str]], limits: Limits = DEFAULT_LIMITS,
                  workers: int = 0) -> list[Verdict]:
    """Judge many answers in parallel; verdicts in the order of ``pairs``.

    Each answer runs in its own sandboxed process; ``workers`` of them at a
    time (0: ``min(4, cpu count)``), so a batch costs about
    ``len(pairs) / workers`` runs of wall time and the machine stays usable.
    """
    pairs = list(pairs)
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0: min(4, cpu count)), got {workers}")
    if not pairs:
        return []
    workers = workers or min(4, os.cpu_count() or 1)
    if workers == 1 or len(pairs) == 1:
        return [_safe_check(task, answer, limits) for task, answer in pairs]
    with ThreadPoolExecutor(max_workers=min(workers, len(pairs)),
                            thread_name_prefix="fedmoe-check") as pool:
        return list(pool.map(lambda pair: _safe_check(pair[0], pair[1], limits), pairs))


def _safe_check(task: Task, answer: str, limits: Limits) -> Verdict:
    """check_answer, with a failure of the sandbox itself (e.g. no fds left) as a verdict."""
    try:
        return check_answer(task, answer, limits)
    except OSError as exc:
        return Verdict(False, f"sandbox error: {exc}")


def pass_rates(tasks: Sequence[Task], verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Share of passed tasks per specialty (in order of first appearance), plus ``"all"``.

    An empty list gives ``{"all": 0.0}``.
    """
    if len(tasks) != len(verdicts):
        raise ValueError(f"{len(tasks)} tasks but {len(verdicts)} verdicts")
    passed: dict[str, list[int]] = {}
    for task, verdict in zip(tasks, verdicts, strict=True):
        counts = passed.setdefault(task.specialty, [0, 0])
        counts[0] += bool(verdict.passed)
        counts[1] += 1
    rates = {name: ok / total for name, (ok, total) in passed.items()}
    total = len(verdicts)
    rates["all"] = sum(bool(v.passed) for v in verdicts) / total if total else 0.0
    return rates


def same_value(got: Any, want: Any) -> bool:
    """Whether two cells are equal by the task rules.

    NULL only equals NULL; numbers compare by value (3 == 3.0; a float within
    1e-6 relative or absolute); true/false are 1/0 (sqlite has no booleans);
    strings compare exactly; a number never equals a string.
    """
    if got is None or want is None:
        return got is None and want is None
    if isinstance(got, bool):
        got = int(got)
    if isinstance(want, bool):
        want = int(want)
    got_number, want_number = isinstance(got, int | float), isinstance(want, int | float)
    if got_number and want_number:
        if isinstance(got, int) and isinstance(want, int):
            return got == want
        return math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if got_number or want_number:
        return False
    return isinstance(got, str) and isinstance(want, str) and got == want


def same_row(got: Sequence[Any], want: Sequence[Any]) -> bool:
    """Rows of equal width whose cells are :func:`same_value` pairwise."""
    return len(got) == len(want) and all(map(same_value, got, want))


def _sort_key(row: Sequence[Any]) -> tuple:
    """NULLs, then numbers by value, then strings: near-equal rows sort side by side."""
    key = []
    for value in row:
        if value is None:
            key.append((0, 0.0, ""))
        elif isinstance(value, bool | int | float):
            try:
                key.append((1, float(value), ""))
            except OverflowError:  # an int beyond float range
                key.append((1, math.copysign(math.inf, value), ""))
        else:
            key.append((2, 0.0, str(value)))
    return tuple(key)


def _fmt(row: Sequence[Any]) -> str:
    text = "[" + ", ".join(map(repr, row)) + "]"
    return text if len(text) <= 80 else text[:77] + "...]"


def compare_rows(got: list[list[Any]], expected: list[list[Any]], ordered: bool = False,
                 columns: int | None = None) -> Verdict:
    """Compare a query's rows with the expected ones (column names never count).

    Rows are lists of cells compared by :func:`same_value`; unless
    ``ordered``, rows are a multiset (any order, duplicates counted).
    ``columns`` is the query's column count, so that a wrong number of
    columns is named even when no row came back.
    """
    width = len(expected[0]) if expected else None
    got_width = columns if columns is not None else (len(got[0]) if got else None)
    if width is not None and got_width is not None and got_width != width:
        return Verdict(False, f"wrong columns: got {got_width} columns, expected {width}")
    if len(got) != len(expected):
        return Verdict(False, f"wrong rows: got {len(got)} rows, expected {len(expected)}")
    if ordered:
        for i, (g, w) in enumerate(zip(got, expected, strict=True)):
            if not same_row(g, w):
                hint = " (same rows, wrong order)" if _multiset_equal(got, expected) else ""
                return Verdict(False, f"wrong row {i + 1}: got {_fmt(g)}, expected {_fmt(w)}"
                                      f"{hint}")
        return Verdict(True, "ok")
    if _multiset_equal(got, expected):
        return Verdict(True, "ok")
    extra = _first_unmatched(got, expected)
    return Verdict(False, f"wrong rows: {_fmt(extra)} is not expected" if extra is not None
                   else "wrong rows")


def _multiset_equal(got: list[list[Any]], expected: list[list[Any]]) -> bool:
    """Equal as multisets of rows: sorted pairing first, an exact matching if that fails."""
    if len(got) != len(expected):
        return False
    a, b = sorted(got, key=_sort_key), sorted(expected, key=_sort_key)
    if all(map(same_row, a, b)):
        return True
    if len(got) > MATCHING_ROWS:
        return False
    return _perfect_matching(got, expected)


def _perfect_matching(got: list[list[Any]], expected: list[list[Any]]) -> bool:
    """Whether every row can be paired with an equal expected row (Kuhn's algorithm).

    Needed because tolerance makes equality non-transitive, so sorted
    pairing can miss a pairing that exists.
    """
    edges = [[j for j, w in enumerate(expected) if same_row(g, w)] for g in got]
    owner = [-1] * len(expected)

    def augment(i: int, seen: list[bool]) -> bool:
        for j in edges[i]:
            if not seen[j]:
                seen[j] = True
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(augment(i, [False] * len(expected)) for i in range(len(got)))


def _first_unmatched(got: list[list[Any]], expected: list[list[Any]]) -> list[Any] | None:
    """A returned row with no equal expected row left, for the reason."""
    a, b = sorted(got, key=_sort_key), sorted(expected, key=_sort_key)
    if len(got) > MATCHING_ROWS:
        return next((g for g, w in zip(a, b, strict=True) if not same_row(g, w)), None)
    left = list(b)
    for row in a:
        match = next((k for k, w in enumerate(left) if same_row(row, w)), None)
        if match is None:
            return row
        del left[match]
    return None
