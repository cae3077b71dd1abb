"""Execution tasks: prompts whose answers are judged by running them.

A task file is JSONL, one task per line (format: ``docs/evaluation.md``).  An
SQL task has ``setup`` and ``expected``, a Python task has ``tests``; the kind
is told by the keys, never guessed.  Loading is strict, because a typo in a
task silently turns into a wrong pass rate: every bad line raises
:class:`TaskError` naming ``file:line`` and the key at fault.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The project's rule for specialty names (fedmoe_flwr.config.check_name), repeated here so
# that this package does not import the config (and numpy) just to load tasks.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
RESERVED_NAMES = ("latest", "gateway", "global")
COMMON_KEYS = ("specialty", "prompt", "id", "reference")
SQL_KEYS = ("setup", "expected", "ordered")
PYTHON_KEYS = ("tests",)
# Which kind of task each specialty takes; load_tasks(..., specialties=...) adds others.
KIND_OF_SPECIALTY = {"sql_expert": "sql", "python_expert": "python"}
KINDS = ("sql", "python")


class TaskError(ValueError):
    """A task file line that is not a valid task; the message names ``file:line`` and the key."""


@dataclass(frozen=True)
class SqlTask:
    """A prompt answered with one SQL query, checked by the rows it returns.

    Attributes
    ----------
    specialty : str
        The expert this task measures (pass rates are grouped by it).
    prompt : str
        What the model is asked; it states the schema and what to return.
    setup : str
        SQL run first in a fresh in-memory sqlite database.
    expected : list of list
        The rows the answer's first statement must return (JSON values).
    ordered : bool
        Whether row order counts (else rows are compared as a multiset).
    source : str
        ``file:line`` of the task, for messages.
    id : str
        The task's identifier ("" if the file gives none).
    reference : str
        A known-correct answer ("" if none): proves the task is solvable.
    """

    specialty: str
    prompt: str
    setup: str
    expected: list[list[Any]]
    ordered: bool
    source: str
    id: str = ""
    reference: str = ""


@dataclass(frozen=True)
class PythonTask:
    """A prompt answered with Python code, checked by running ``tests`` after it.

    Attributes
    ----------
    specialty, prompt, source, id, reference : str
        As for :class:`SqlTask`.
    tests : str
        Python statements (typically ``assert`` lines) run in the answer's
        namespace after its code; the task passes if they all run.
    """

    specialty: str
    prompt: str
    tests: str
    source: str
    id: str = ""
    reference: str = ""


Task = SqlTask | PythonTask


def load_tasks(paths: Sequence[str | Path],
               specialties: Mapping[str, str] | None = None) -> list[Task]:
    """Read every task of the given JSONL files, in order.

    Parameters
    ----------
    paths : sequence of str or Path
        Task files (a single path is accepted too).
    specialties : mapping, optional
        More specialty names and the kind of task each takes (``"sql"`` or
        ``"python"``), e.g. ``{"pandas_expert": "python"}``, on top of
        ``sql_expert`` (SQL) and ``python_expert`` (Python).  A task of any
        other specialty, or of the wrong kind for its specialty, is an error.

    Returns
    -------
    list of Task
        One :class:`SqlTask` or :class:`PythonTask` per non-blank line.

    Raises
    ------
    TaskError
        For an unreadable file, invalid UTF-8 or JSON, a missing, unknown or
        wrongly typed key, or an ``id`` used twice; the message names
        ``file:line`` and the key.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    kinds = _kinds(specialties)
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise TaskError(f"{path}: cannot read the task file: {exc}") from exc
        for number, raw in enumerate(data.split(b"\n"), start=1):
            source = f"{path}:{number}"
            task = _parse_line(raw, source, kinds)
            if task is None:
                continue
            if task.id and task.id in seen:
                raise TaskError(f"{source}: key 'id': {task.id!r} is already the id of the task "
                                f"at {seen[task.id]}")
            if task.id:
                seen[task.id] = source
            tasks.append(task)
    return tasks


def _kinds(specialties: Mapping[str, str] | None) -> dict[str, str]:
    kinds = dict(KIND_OF_SPECIALTY)
    for name, kind in (specialties or {}).items():
        if kind not in KINDS or not isinstance(name, str) or not SAFE_NAME.fullmatch(name) \
                or ".." in name or name in RESERVED_NAMES:
            raise ValueError(f"specialties: {name!r} -> {kind!r} is not a specialty name and one "
                             f"of {KINDS}")
        kinds[name] = kind
    return kinds


def _parse_line(raw: bytes, source: str, kinds: dict[str, str]) -> Task | None:
    """One line -> a task (None for a blank line)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(f"{source}: invalid UTF-8 at byte {exc.start}") from None
    text = text.lstrip("\ufeff").strip()
    if not text:
        return None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError as exc:
        raise TaskError(f"{source}: invalid JSON: {exc}") from None
    except RecursionError:  # json's C decoder gives up on deep nesting with this
        raise TaskError(f"{source}: invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise TaskError(f"{source}: a task must be a JSON object, got {type(obj).__name__}")
    kind = _kind(obj, source)
    specialty = _specialty(obj, kind, source, kinds)
    prompt = _text(obj, "prompt", source)
    extra = {"id": _text(obj, "id", source, optional=True),
             "reference": _text(obj, "reference", source, optional=True)}
    if kind == "sql":
        return SqlTask(specialty, prompt, _text(obj, "setup", source, empty=True),
                       _expected(obj.get("expected"), source), _ordered(obj, source), source,
                       **extra)
    return PythonTask(specialty, prompt, _tests(obj, source), source, **extra)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _kind(obj: dict, source: str) -> str:
    """"sql" or "python", by the keys present; unknown keys are refused by name."""
    for key in obj:
        if key not in (*COMMON_KEYS, *SQL_KEYS, *PYTHON_KEYS):
            raise TaskError(f"{source}: unknown key {key!r} (a task has {', '.join(COMMON_KEYS)}"
                            f", then setup + expected [+ ordered] for SQL or tests for Python)")
    sql = [k for k in SQL_KEYS if k in obj]
    python = [k for k in PYTHON_KEYS if k in obj]
    if sql and python:
        raise TaskError(f"{source}: key 'tests' is for Python tasks but the line also has SQL "
                        f"key(s) {', '.join(map(repr, sql))}: give one kind per task")
    if python:
        return "python"
    if not sql:
        raise TaskError(f"{source}: key 'setup'/'expected' (SQL task) or 'tests' (Python "
                        f"task) is missing")
    for key in ("setup", "expected"):
        if key not in obj:
            raise TaskError(f"{source}: key {key!r} is missing (an SQL task needs setup and "
                            f"expected)")
    return "sql"


def _specialty(obj: dict, kind: str, source: str, kinds: dict[str, str]) -> str:
    """The specialty, known and of this line's kind (an SQL line for an SQL specialty)."""
    name = _text(obj, "specialty", source)
    if name not in kinds:
        known = ", ".join(f"{n} ({k.upper() if k == 'sql' else k.title()} tasks)"
                          for n, k in sorted(kinds.items()))
        raise TaskError(f"{source}: key 'specialty': unknown specialty {name!r}; known: {known}")
    if kinds[name] != kind:
        raise TaskError(f"{source}: key 'specialty': {name!r} takes {kinds[name].upper()} "
                        f"tasks, but this line is a {kind.upper()} task "
                        f"({'setup/expected' if kind == 'sql' else 'tests'})")
    return name


def _text(obj: dict, key: str, source: str, optional: bool = False, empty: bool = False) -> str:
    """A string key; required and non-blank unless told otherwise."""
    if key not in obj:
        if optional:
            return ""
        raise TaskError(f"{source}: key {key!r} is missing")
    value = obj[key]
    if not isinstance(value, str):
        raise TaskError(f"{source}: key {key!r} must be a string, got {type(value).__name__}")
    if not value.strip() and not empty:
        raise TaskError(f"{source}: key {key!r} is empty")
    return value


def _ordered(obj: dict, source: str) -> bool:
    value = obj.get("ordered", False)
    if not isinstance(value, bool):
        raise TaskError(f"{source}: key 'ordered' must be true or false, got {value!r}")
    return value


def _expected(value: Any, source: str) -> list[list[Any]]:
    """A list of rows, each a non-empty list of JSON scalars, all of one width."""
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise TaskError(f"{source}: key 'expected' must be a list of rows, each a list of "
                        f"values, e.g. [[1, \"a\"], [2, \"b\"]]")
    widths = {len(row) for row in value}
    if 0 in widths or len(widths) > 1:
        raise TaskError(f"{source}: key 'expected': every row needs the same number (>= 1) of "
                        f"values, got rows of {sorted(widths)}")
    for row in value:
        for cell in row:
            if cell is not None and not isinstance(cell, bool | int | float | str):
                raise TaskError(f"{source}: key 'expected': a value must be a number, string, "
                                f"true/false or null, got {json.dumps(cell)[:60]}")
            if isinstance(cell, float) and not math.isfinite(cell):
                raise TaskError(f"{source}: key 'expected': {cell} is not a comparable value")
    return value


def _tests(obj: dict, source: str) -> str:
    tests = _text(obj, "tests", source)
    try:
        compile(tests, f"{source} tests", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line} of the tests)" if line else ""
        raise TaskError(f"{source}: key 'tests' is not valid Python: "
                        f"{getattr(exc, 'msg', exc)}{where}") from None
    return tests
