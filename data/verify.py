"""Execution checks of the training data: SQL runs in sqlite, Python runs its tests.

The generator (``generate.py``) keeps, next to every SQL and Python example, what it
takes to run the reference answer: for SQL the schema and sample rows (``SqlCheck``),
for Python fixtures and asserts (``PyCheck``).  None of it goes into the JSONL files.

SQL: each reference runs in a fresh in-memory sqlite database after its setup.  It
must run without error and, by default (``expect="auto"``), a query must return at
least one row and an INSERT / UPDATE / DELETE must change at least one row; an
optional ``after`` query must return a row (it checks what a DDL statement did).

Python: the checks run in one subprocess (``python verify.py --runner``), one after
another, each in its own namespace, its own working directory below a temporary
directory and under a time limit.  The rule for what runs:

* every reference must compile;
* it runs (fixture ``given``, then the reference, then the asserts ``then``) unless its
  check is ``compile_only`` with one of ``COMPILE_ONLY_REASONS`` (it needs the network
  or is too slow to run here), or a module it ``needs`` is not installed;
* ``raises`` names the exception a reference must raise (e.g. "raise a custom error").

``time.sleep`` does not sleep in the runner (retry and backoff answers run instantly).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

COMPILE_ONLY_REASONS = {
    "network": "talks to a server (HTTP requests, downloads, pip)",
    "slow": "takes seconds to run (creates a virtual environment with pip)",
}
JOB_TIMEOUT_S = 10.0  # one Python check (the first pandas or matplotlib import is slow)
RUNNER_TIMEOUT_S = 120.0  # one runner subprocess, all its checks together
RESULTS = "results.jsonl"  # the runner's results, in its temporary directory


@dataclass(frozen=True)
class SqlCheck:
    """What a SQL reference runs against and what it must do."""

    setup: str  # DDL and sample rows, run first
    expect: str = "auto"  # auto | rows | changes | ok
    after: str = ""  # a query that must return a row once the reference ran


@dataclass(frozen=True)
class PyCheck:
    """Fixtures and asserts of a Python reference."""

    given: str = ""  # fixture code run before the reference, in its namespace
    then: str = ""  # asserts run after the reference
    files: tuple[tuple[str, str], ...] = ()  # (name, text) written into the working dir
    needs: tuple[str, ...] = ()  # third-party modules; compile only if one is missing
    compile_only: str = ""  # a key of COMPILE_ONLY_REASONS
    raises: str = ""  # the exception the reference must raise


@dataclass(frozen=True)
class Sample:
    """One example and how to check it (``check`` is None for docs)."""

    prompt: str
    code: str
    check: SqlCheck | PyCheck | None = None
    origin: str = "template"  # template | everyday | bank


@dataclass(frozen=True)
class Failure:
    """A sample whose reference did not pass its check."""

    prompt: str
    code: str
    error: str

    def __str__(self) -> str:
        return f"- prompt: {self.prompt!r}\n  error: {self.error}"


# ---------------------------------------------------------------------------------- sql


def sql_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (comments stay with the next one)."""
    out, start = [], 0
    for pos, ch in enumerate(script):
        if ch == ";" and sqlite3.complete_statement(script[start:pos + 1]):
            out.append(script[start:pos + 1])
            start = pos + 1
    rest = script[start:]
    if re.sub(r"--[^\n]*", "", rest).strip():
        out.append(rest)  # a last statement without its semicolon
    return out


def leading_keyword(statement: str) -> str:
    """The first SQL keyword of a statement, past comments (upper case)."""
    text = re.sub(r"--[^\n]*", "", statement).strip()
    return text.split(None, 1)[0].upper() if text else ""


def check_sql(sample: Sample) -> str | None:
    """Run one SQL sample; return the error, or None when it passes."""
    chk = sample.check
    con = sqlite3.connect(":memory:", isolation_level=None)
    try:
        try:
            con.executescript(chk.setup)
        except sqlite3.Error as err:
            return f"setup: {type(err).__name__}: {err}"
        before, rows, last = con.total_changes, None, ""
        for statement in sql_statements(sample.code):
            try:
                cur = con.execute(statement)
                rows = cur.fetchall() if cur.description else None
            except sqlite3.Error as err:
                return f"{type(err).__name__}: {err} (in: {statement.strip()[:80]!r})"
            last = leading_keyword(statement)
        return expectation_error(con, chk, last, rows, con.total_changes - before)
    finally:
        con.close()


def expectation_error(con: sqlite3.Connection, chk: SqlCheck, last: str,
                      rows: list | None, changes: int) -> str | None:
    """Whether what the reference did is what it should have done."""
    expect = chk.expect
    if expect == "auto":
        expect = {"SELECT": "rows", "WITH": "rows", "VALUES": "rows", "INSERT": "changes",
                  "UPDATE": "changes", "DELETE": "changes", "REPLACE": "changes"}.get(last, "ok")
        if last == "WITH" and rows is None:
            expect = "changes"  # WITH ... INSERT / UPDATE / DELETE
    if expect == "rows" and not rows:
        return "the query returns no row on the sample data"
    if expect == "changes" and changes == 0:
        return "the statement changes no row of the sample data"
    if chk.after:
        try:
            if not con.execute(chk.after).fetchall():
                return f"after the reference, {chk.after!r} returns no row"
        except sqlite3.Error as err:
            return f"after: {type(err).__name__}: {err}"
    return None


def describe_tables(setup: str) -> list[tuple[str, list[str]]]:
    """The tables (in creation order) and their columns that a setup script creates."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(setup)
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        return [(n, [r[1] for r in con.execute("SELECT * FROM pragma_table_info(?)", (n,))])
                for n in names]
    finally:
        con.close()


def states_schema(prompt: str, setup: str) -> bool:
    """Whether the prompt names every table of the setup with all its columns."""
    tables = describe_tables(setup) if setup else []
    words = set(re.findall(r"\w+", prompt))
    return bool(tables) and all(t in words and set(cols) <= words for t, cols in tables)


def defined_names(code: str) -> list[str]:
    """Top-level functions and classes a Python reference defines."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node.name for node in tree.body if isinstance(node, kinds)]


def names_signature(prompt: str, code: str) -> bool:
    """Whether the prompt names a function or class of the reference with its arguments."""
    spans = re.findall(r"`([^`]+)`", prompt)
    return any(re.search(rf"(?:^|\bdef |\bclass )\s*{re.escape(name)}\(", span)
               for name in defined_names(code) for span in spans)


# ------------------------------------------------------------------------------- python


def python_job(index: int, sample: Sample, timeout: float) -> dict:
    """The JSON job the runner executes for one Python sample."""
    chk = sample.check
    return {"i": index, "code": sample.code, "given": chk.given, "then": chk.then,
            "files": [list(f) for f in chk.files], "needs": list(chk.needs),
            "compile_only": chk.compile_only, "raises": chk.raises, "timeout": timeout}


def check_python(samples: list[Sample], timeout: float = JOB_TIMEOUT_S) -> list[Failure]:
    """Run the Python samples' checks in runner subprocesses (a crash costs one sample)."""
    for sample in samples:
        reason = sample.check.compile_only
        if reason and reason not in COMPILE_ONLY_REASONS:
            raise ValueError(f"compile_only={reason!r}: not one of {sorted(COMPILE_ONLY_REASONS)}")
    errors: dict[int, str] = {}
    pending = list(range(len(samples)))
    while pending:
        results = run_runner([python_job(i, samples[i], timeout) for i in pending])
        errors.update({i: e for i, e in results.items() if e})
        rest = [i for i in pending if i not in results]
        if rest:  # the runner died or hung on rest[0]: blame it, go on with the others
            errors[rest[0]] = "the runner died or timed out on this check"
            rest = rest[1:]
        pending = rest
    return [Failure(samples[i].prompt, samples[i].code, errors[i]) for i in sorted(errors)]


def run_runner(jobs: list[dict]) -> dict[int, str | None]:
    """One runner subprocess over ``jobs`` in a temporary directory; the results it wrote."""
    with tempfile.TemporaryDirectory(prefix="fedmoe-verify-") as tmp:
        env = {**os.environ, "HOME": tmp, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONHASHSEED": "0"}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--runner"]
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(cmd, input=json.dumps(jobs), capture_output=True, text=True,
                           cwd=tmp, env=env, timeout=RUNNER_TIMEOUT_S)
        path = Path(tmp) / RESULTS
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    results: dict[int, str | None] = {}
    for line in text.splitlines():
        with contextlib.suppress(ValueError):  # a line cut short by a crash
            row = json.loads(line)
            results[row["i"]] = row["error"]
    return results


class CheckTimeout(BaseException):
    """Raised in a check that runs past its time limit (no ``except Exception`` catches it)."""


def _alarm(signum, frame):
    raise CheckTimeout("the check ran past its time limit")


def describe_error(label: str, exc: BaseException) -> str:
    """``label:line: Type: message`` with the line in that part of the check."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<")]
    where = f"{frames[-1].filename.strip('<>')}:{frames[-1].lineno}" if frames else label
    return f"{where}: {type(exc).__name__}: {exc}"[:400]


def run_job(job: dict, root: Path) -> str | None:
    """Compile and (unless compile-only) run one check in its own directory and namespace."""
    parts = [("fixture", job["given"]), ("reference", job["code"]), ("test", job["then"])]
    try:
        compiled = [(label, compile(src, f"<{label}>", "exec")) for label, src in parts]
    except SyntaxError as err:
        return f"{err.filename.strip('<>')}:{err.lineno}: SyntaxError: {err.msg}"
    if job["compile_only"] or any(importlib.util.find_spec(m) is None for m in job["needs"]):
        return None
    work = root / f"check-{job['i']}"
    work.mkdir()
    for name, text in job["files"]:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text, encoding="utf-8")
    for name, _ in job["files"]:
        if name.endswith(".py"):
            sys.modules.pop(Path(name).stem, None)  # a fixture module replaces an earlier one
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    os.chdir(work)
    sys.path.insert(0, str(work))
    handlers = list(logging.root.handlers)
    try:
        return exec_parts(compiled, namespace, job["raises"], job["timeout"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.path.remove(str(work))
        logging.root.handlers[:] = handlers
        os.chdir(root)


def exec_parts(compiled: list, namespace: dict, raises: str, timeout: float) -> str | None:
    """Execute fixture, reference and test; the reference may have to raise ``raises``."""
    out = io.StringIO()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        for label, code in compiled:
            try:
                exec(code, namespace)  # our own, trusted reference answers
            except BaseException as exc:  # any failure of a check is reported
                if label == "reference" and raises and type(exc).__name__ == raises:
                    continue
                return describe_error(label, exc)
            if label == "reference" and raises:
                return f"reference: expected {raises} to be raised"
    return None


def runner_main() -> int:
    """The subprocess: read jobs (JSON) from stdin, write one JSON result line per job."""
    jobs = json.loads(sys.stdin.read())
    root = Path.cwd()
    time.sleep = lambda seconds: None  # backoff and "sleep 2 s" answers run instantly
    signal.signal(signal.SIGALRM, _alarm)
    sys.argv = ["snippet"]
    with open(root / RESULTS, "w", encoding="utf-8") as results:  # not stdout: checks print
        for job in jobs:
            error = run_job(job, root)
            results.write(json.dumps({"i": job["i"], "error": error}) + "\n")
            results.flush()
    return 0


def verify(samples: list[Sample]) -> list[Failure]:
    """Run every check of ``samples`` (duplicates once); the failures, SQL first."""
    unique: dict[tuple, Sample] = {}
    for sample in samples:
        if sample.check is not None:
            unique.setdefault((sample.code, sample.check), sample)
    sql = [s for s in unique.values() if isinstance(s.check, SqlCheck)]
    py = [s for s in unique.values() if isinstance(s.check, PyCheck)]
    failures = []
    for sample in sql:
        error = check_sql(sample)
        if error:
            failures.append(Failure(sample.prompt, sample.code, error))
    return failures + check_python(py)


if __name__ == "__main__":
    if sys.argv[1:] == ["--runner"]:
        sys.exit(runner_main())
    sys.exit("usage: python data/verify.py --runner (started by generate.py --verify)")
