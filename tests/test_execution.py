"""Execution checks: task files, finding the code in answers, comparing rows, and the
sandbox under hostile answers (each must cost one failed task and nothing else)."""

import dis
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from fedmoe_flwr.execution import (
    Limits,
    PythonTask,
    SqlTask,
    TaskError,
    Verdict,
    _child,  # the sandbox's child script, imported here only to inspect its code
    check_answer,
    check_answers,
    compare_rows,
    extract_code,
    first_statement,
    load_tasks,
    pass_rates,
    python_from_answer,
    run_python,
    run_sql,
    sandbox_layers,
    sql_from_answer,
)

ROOT = Path(__file__).resolve().parents[1]
EXEC = ROOT / "data" / "eval" / "exec"
LIMITS = Limits(seconds=10)


def py_task(tests: str) -> PythonTask:
    return PythonTask("python_expert", "p", tests, "test:1")


def sql_task(setup: str, expected: list, ordered: bool = False) -> SqlTask:
    return SqlTask("sql_expert", "p", setup, expected, ordered, "test:1")


# --- shipped task sets -------------------------------------------------------------------------

SHIPPED = load_tasks([EXEC / "sql.jsonl", EXEC / "python.jsonl"])

# Realistic mistakes of a small model, by task id: each must fail.
MISTAKES = {
    "sql-high-earners-sorted": "SELECT name FROM employees WHERE salary > 5000 ORDER BY name DESC;",
    "sql-never-ordered": "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id;",
    "sql-distinct-cities": "SELECT COUNT(city) FROM customers;",
    "sql-top3-products": "SELECT name, price FROM products ORDER BY price LIMIT 3;",
    "sql-avg-salary-dept": "SELECT department, SUM(salary) FROM employees GROUP BY department;",
    "sql-big-spenders": "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id "
                        "WHERE o.amount > 50;",
    "sql-cancel-rate": "SELECT COUNT(*) FROM orders WHERE status = 'cancelled';",
    "sql-orders-per-customer-all": "SELECT c.name, COUNT(*) FROM customers c JOIN orders o "
                                   "ON o.customer_id = c.id GROUP BY c.name;",
    "sql-genre-rating": "SELECT genre, AVG(rating) FROM movies GROUP BY genre;",
    "sql-latest-errors": "SELECT message FROM logs WHERE level = 'ERROR' ORDER BY created_at "
                         "LIMIT 2;",
    "sql-running-total-north": "SELECT month, revenue, SUM(revenue) FROM sales "
                               "WHERE region = 'North' GROUP BY month ORDER BY month;",
    "sql-employee-manager": "SELECT e.name, m.name FROM employees e LEFT JOIN employees m "
                            "ON m.id = e.manager_id;",
    "py-fibonacci": "def fibonacci(n):\n    a, b = 1, 1\n    for _ in range(n):\n"
                    "        a, b = b, a + b\n    return a\n",
    "py-rotate-list": "def rotate_list(lst, k):\n    k %= max(len(lst), 1)\n"
                      "    return lst[k:] + lst[:k]\n",
    "py-slugify": "def slugify(title):\n    return '-'.join(title.lower().split())\n",
    "py-median": "def median(nums):\n    nums.sort()\n    return nums[len(nums) // 2]\n",
}


def stub(task: PythonTask) -> str:
    """A clearly wrong answer: the task's function (or class) defined to return None."""
    name = re.search(r"^(?:def|class) (\w+)", task.reference, re.M).group(1)
    return f"```python\ndef {name}(*args, **kwargs):\n    return None\n```"


def test_shipped_task_files_are_complete():
    by_file = {}
    for task in SHIPPED:
        by_file.setdefault(task.source.rsplit(":", 1)[0], []).append(task)
    sql, python = by_file[str(EXEC / "sql.jsonl")], by_file[str(EXEC / "python.jsonl")]
    assert len(sql) >= 40 and len(python) >= 40
    assert {t.specialty for t in sql} == {"sql_expert"}
    assert {t.specialty for t in python} == {"python_expert"}
    assert all(t.id and t.reference.strip() for t in SHIPPED)
    assert len({t.id for t in SHIPPED}) == len(SHIPPED)
    assert all(t.expected for t in sql)  # an empty result would pass a query matching nothing
    assert set(MISTAKES) <= {t.id for t in SHIPPED}


def test_every_reference_passes_and_wrong_answers_fail():
    """References pass; a stub fails every Python task (its tests assert something); typical
    mistakes fail; and an SQL task's rows minus one, or with a changed value, do not match."""
    pairs = [(t, t.reference) for t in SHIPPED]
    pairs += [(t, stub(t)) for t in SHIPPED if isinstance(t, PythonTask)]
    by_id = {t.id: t for t in SHIPPED}
    pairs += [(by_id[i], answer) for i, answer in MISTAKES.items()]
    verdicts = check_answers(pairs, LIMITS)
    n = len(SHIPPED)
    results = list(zip(pairs, verdicts, strict=True))
    failed = [(t.id, v.reason) for (t, _), v in results[:n] if not v.passed]
    assert failed == []
    passed_wrong = [(t.id, a) for (t, a), v in results[n:] if v.passed]
    assert passed_wrong == []
    assert pass_rates(SHIPPED, verdicts[:n]) == {"sql_expert": 1.0, "python_expert": 1.0,
                                                 "all": 1.0}
    for task in SHIPPED:
        if isinstance(task, SqlTask):
            changed = [list(row) for row in task.expected]
            cell = changed[-1][-1]
            changed[-1][-1] = "changed" if not isinstance(cell, str) else cell + "!"
            for rows in (task.expected[:-1], changed):
                assert not compare_rows(rows, task.expected, task.ordered).passed, task.id


# --- task file parsing ------------------------------------------------------------------------

GOOD_SQL = {"specialty": "sql_expert", "prompt": "p", "setup": "CREATE TABLE t(a);",
            "expected": [[1]]}
GOOD_PY = {"specialty": "python_expert", "prompt": "p", "tests": "assert True"}


def line(base: dict, **change) -> str:
    obj = {**base, **change}
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


BAD_LINES = [
    ("unknown key", line(GOOD_SQL, colour="red"), "'colour'"),
    ("invalid json", '{"specialty": "sql_expert", ', "invalid JSON"),
    ("not an object", "[1, 2]", "JSON object"),
    ("duplicate key", '{"prompt": "a", "prompt": "b"}', "'prompt'"),
    ("missing prompt", line(GOOD_SQL, prompt=...), "'prompt'"),
    ("empty prompt", line(GOOD_PY, prompt="  "), "'prompt'"),
    ("prompt not a string", line(GOOD_PY, prompt=3), "'prompt'"),
    ("missing specialty", line(GOOD_PY, specialty=...), "'specialty'"),
    ("bad specialty name", line(GOOD_PY, specialty="../x"), "'specialty'"),
    ("unknown specialty", line(GOOD_PY, specialty="docs_expert"), "'specialty'"),
    ("sql specialty, python task", line(GOOD_PY, specialty="sql_expert"), "'specialty'"),
    ("python specialty, sql task", line(GOOD_SQL, specialty="python_expert"), "'specialty'"),
    ("both kinds", line(GOOD_SQL, tests="assert True"), "'tests'"),
    ("neither kind", line(GOOD_PY, tests=...), "'setup'"),
    ("setup missing", line(GOOD_SQL, setup=...), "'setup'"),
    ("expected missing", line(GOOD_SQL, expected=...), "'expected'"),
    ("setup not a string", line(GOOD_SQL, setup=["CREATE TABLE t(a)"]), "'setup'"),
    ("expected flat list", line(GOOD_SQL, expected=[1, 2]), "'expected'"),
    ("expected not a list", line(GOOD_SQL, expected="[[1]]"), "'expected'"),
    ("expected ragged rows", line(GOOD_SQL, expected=[[1, 2], [3]]), "'expected'"),
    ("expected empty row", line(GOOD_SQL, expected=[[]]), "'expected'"),
    ("expected nested value", line(GOOD_SQL, expected=[[{"a": 1}]]), "'expected'"),
    ("ordered not a bool", line(GOOD_SQL, ordered="yes"), "'ordered'"),
    ("tests do not compile", line(GOOD_PY, tests="assert (1 =="), "'tests'"),
    ("empty tests", line(GOOD_PY, tests=""), "'tests'"),
    ("id not a string", line(GOOD_PY, id=7), "'id'"),
    ("reference not a string", line(GOOD_PY, reference=None), "'reference'"),
    ("NaN constant", line(GOOD_SQL).replace("[[1]]", "[[NaN]]"), "NaN"),
]


@pytest.mark.parametrize("text,key", [(t, k) for _, t, k in BAD_LINES],
                         ids=[name for name, _, _ in BAD_LINES])
def test_bad_line_names_file_line_and_key(tmp_path, text, key):
    path = tmp_path / "tasks.jsonl"
    path.write_text(line(GOOD_SQL) + "\n\n" + text + "\n")  # the bad line is line 3
    with pytest.raises(TaskError) as err:
        load_tasks([path])
    assert str(err.value).startswith(f"{path}:3: ")
    assert key in str(err.value)
    assert isinstance(err.value, ValueError)


def test_invalid_utf8_and_duplicate_ids_name_their_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(line(GOOD_PY).encode() + b"\n" + b'{"prompt": "\xff"}\n')
    with pytest.raises(TaskError, match=rf"^{re.escape(str(path))}:2: invalid UTF-8"):
        load_tasks([path])
    path.write_text(line(GOOD_PY, id="a") + "\n" + line(GOOD_SQL, id="a") + "\n")
    with pytest.raises(TaskError, match=rf"^{re.escape(str(path))}:2: key 'id'.*:1"):
        load_tasks([path])
    with pytest.raises(TaskError, match="cannot read"):
        load_tasks([tmp_path / "missing.jsonl"])


def test_load_tasks_reads_both_kinds_with_defaults(tmp_path):
    path = tmp_path / "t.jsonl"
    text = "\n" + line(GOOD_SQL, id="s1") + "\r\n   \n" + line(GOOD_PY, reference="x = 1") + "\n"
    path.write_bytes(text.encode())
    sql, python = load_tasks([path])
    assert sql == SqlTask("sql_expert", "p", "CREATE TABLE t(a);", [[1]], False, f"{path}:2",
                          id="s1")
    assert python == PythonTask("python_expert", "p", "assert True", f"{path}:4",
                                reference="x = 1")
    assert load_tasks(path) == [sql, python]  # one path, not in a list
    other = tmp_path / "other.jsonl"
    other.write_text(line(GOOD_SQL, specialty="duckdb_expert", ordered=True) + "\n")
    with pytest.raises(TaskError, match="unknown specialty 'duckdb_expert'"):
        load_tasks([other])
    assert load_tasks([other], specialties={"duckdb_expert": "sql"})[0].ordered is True
    with pytest.raises(TaskError, match="takes PYTHON tasks"):
        load_tasks([other], specialties={"duckdb_expert": "python"})
    with pytest.raises(ValueError):
        load_tasks([other], specialties={"duckdb_expert": "docs"})


# --- finding the code --------------------------------------------------------------------------

FENCE = "```"
EXTRACT = [
    ("bare code", "def f():\n    return 1\n", "def f():\n    return 1"),
    ("prose then block", f"Sure! Here it is:\n\n{FENCE}python\nx = 1\n{FENCE}\nThat's it.",
     "x = 1"),
    ("CRLF", f"Answer:\r\n{FENCE}sql\r\nSELECT 1;\r\n{FENCE}\r\n", "SELECT 1;"),
    ("no language tag", f"{FENCE}\nprint(2)\n{FENCE}", "print(2)"),
    ("tilde fence", "~~~py\ny = 2\n~~~", "y = 2"),
    ("indented fence", f"1. Code:\n   {FENCE}python\n   def g():\n       pass\n   {FENCE}",
     "def g():\n    pass"),
    ("missing closing fence", f"Try this:\n{FENCE}python\nz = 3\nprint(z)\n", "z = 3\nprint(z)"),
    ("first of two blocks", f"{FENCE}python\na = 1\n{FENCE}\nor\n{FENCE}python\na = 2\n{FENCE}",
     "a = 1"),
    ("longer fence holds a shorter one", "````md\n```\ninner\n```\n````", "```\ninner\n```"),
    ("empty block skipped", f"{FENCE}\n{FENCE}\n{FENCE}sql\nSELECT 2\n{FENCE}", "SELECT 2"),
    ("inline one-line fence", f"{FENCE}SELECT 5;{FENCE}", "SELECT 5;"),
    ("empty answer", "", ""),
]


@pytest.mark.parametrize("answer,code", [(a, c) for _, a, c in EXTRACT],
                         ids=[name for name, _, _ in EXTRACT])
def test_extract_code(answer, code):
    assert extract_code(answer) == code


def test_extract_code_prefers_the_tasks_language_over_other_tags():
    answer = f"{FENCE}bash\npip install nothing\n{FENCE}\n{FENCE}python\nimport math\n{FENCE}"
    assert extract_code(answer) == "pip install nothing"
    assert extract_code(answer, prefer="python") == "import math"
    assert extract_code(f"{FENCE}text\nout\n{FENCE}", prefer="sql") == "out"


def test_python_from_an_interactive_transcript():
    answer = f"{FENCE}pycon\n>>> def f(x):\n...     return x + 1\n...\n>>> f(1)\n2\n{FENCE}"
    assert python_from_answer(answer) == "def f(x):\n    return x + 1\n\nf(1)"
    assert python_from_answer("x = '>>> not a prompt'") == "x = '>>> not a prompt'"


STATEMENTS = [
    ("SELECT 1; SELECT 2;", "SELECT 1"),
    ("SELECT 1", "SELECT 1"),
    ("SELECT ';' AS x; DROP TABLE t;", "SELECT ';' AS x"),
    ('SELECT "a;b" FROM t; x', 'SELECT "a;b" FROM t'),
    ("-- pick one; or two\nSELECT 3;", "SELECT 3"),
    ("/* a; b */ SELECT 4; SELECT 5", "SELECT 4"),
    (";; \n SELECT 6", "SELECT 6"),
    ("SELECT 'it''s;' ;", "SELECT 'it''s;'"),
    ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END; SELECT 7;",
     "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END"),
    ("-- only a comment", None),
    ("  ;  ", None),
    ("", None),
]


@pytest.mark.parametrize("sql,statement", STATEMENTS)
def test_first_statement(sql, statement):
    assert first_statement(sql) == statement


def test_sql_from_bare_answers_drops_prose():
    assert sql_from_answer("Here is the query:\nSELECT a FROM t\n\nIt returns a.") == \
        "SELECT a FROM t"
    assert first_statement(sql_from_answer("select a from t;\nThis works.")) == "select a from t"
    assert sql_from_answer(f"Query:\n{FENCE}sql\nSELECT 1\n{FENCE}") == "SELECT 1"


# --- comparing rows ----------------------------------------------------------------------------

COMPARE = [
    ("order ignored", [[2], [1]], [[1], [2]], False, True),
    ("order counts when ordered", [[2], [1]], [[1], [2]], True, False),
    ("int equals float", [[3]], [[3.0]], False, True),
    ("float within tolerance", [[0.1 + 0.2]], [[0.3]], True, True),
    ("relative tolerance", [[1e12 + 1]], [[1e12]], True, True),
    ("float outside tolerance", [[2.001]], [[2.0]], True, False),
    ("null equals null", [[None, 1]], [[None, 1]], True, True),
    ("null is not zero", [[0]], [[None]], True, False),
    ("null is not empty text", [[""]], [[None]], True, False),
    ("string is not number", [["3"]], [[3]], True, False),
    ("strings are exact", [["Paris "]], [["Paris"]], True, False),
    ("case counts", [["paris"]], [["Paris"]], True, False),
    ("true is 1", [[1]], [[True]], True, True),
    ("duplicates count", [[1], [1], [2]], [[1], [2], [2]], False, False),
    ("multiset with duplicates", [[1], [2], [1]], [[1], [1], [2]], False, True),
    ("extra row", [[1], [2], [3]], [[1], [2]], False, False),
    ("wrong columns", [[1, 2]], [[1]], False, False),
    ("no rows expected", [], [], False, True),
]


@pytest.mark.parametrize("got,want,ordered,same", [c[1:] for c in COMPARE],
                         ids=[c[0] for c in COMPARE])
def test_compare_rows(got, want, ordered, same):
    assert compare_rows(got, want, ordered).passed is same


def test_compare_rows_reasons():
    assert compare_rows([[1], [2], [3]], [[1], [2]]).reason == \
        "wrong rows: got 3 rows, expected 2"
    assert compare_rows([[1, 2]], [[1]]).reason == "wrong columns: got 2 columns, expected 1"
    assert compare_rows([], [[1]], columns=2).reason == "wrong columns: got 2 columns, expected 1"
    assert "wrong order" in compare_rows([[2], [1]], [[1], [2]], ordered=True).reason
    assert compare_rows([[5]], [[4]]).reason == "wrong rows: [5] is not expected"
    # tolerance is not transitive: sorted pairing fails here, the matching does not
    assert compare_rows([[1.0000004], [1.0000016]], [[1.000001], [1.000002]]).passed


def test_sql_values_through_sqlite():
    setup = "CREATE TABLE t(a INTEGER, b REAL, c TEXT); INSERT INTO t VALUES (3, 2.5, NULL);"
    assert check_answer(sql_task(setup, [[3.0, 2.5000000001, None]]),
                        "SELECT a, b, c FROM t", LIMITS) == Verdict(True, "ok")
    assert not check_answer(sql_task(setup, [["3", 2.5, None]]), "SELECT a, b, c FROM t",
                            LIMITS).passed
    assert check_answer(sql_task("", [[1, "x"]]), "SELECT 1, CAST('x' AS BLOB)", LIMITS).passed


def test_sql_answers_that_are_not_queries():
    setup = "CREATE TABLE t(a); INSERT INTO t VALUES (1);"
    task = sql_task(setup, [[1]])
    checks = {"": "no code in answer", "-- nothing here": "no SQL statement",
              "INSERT INTO t VALUES (2); SELECT a FROM t;": "not a query",
              "SELEC a FROM t": "not a query", "SELECT b FROM t": "no such column",
              "WITH d AS (DELETE FROM t RETURNING a) SELECT * FROM d": "sqlite error",
              "SELECT a FROM t; SELECT 2": "ok"}
    verdicts = check_answers([(task, answer) for answer in checks], LIMITS)
    for (answer, expected), verdict in zip(checks.items(), verdicts, strict=True):
        assert expected in verdict.reason, (answer, verdict)


# --- python verdicts ---------------------------------------------------------------------------

def test_python_reasons_name_the_failure():
    task = py_task("assert double(2) == 4\nassert double(-1) == -2")
    cases = {
        f"Here you go:\n{FENCE}python\ndef double(x):\n    return 2 * x\n{FENCE}\nEnjoy!": "ok",
        "def double(x):\n    return x + 2": "test failed: assert double(-1) == -2",
        "def double(x) return 2 * x": "SyntaxError",
        "def triple(x):\n    return 3 * x": "NameError",
        "def double(x):\n    return 1 / 0": "ZeroDivisionError",
        "": "no code in answer",
    }
    verdicts = check_answers([(task, answer) for answer in cases], LIMITS)
    for (answer, expected), verdict in zip(cases.items(), verdicts, strict=True):
        assert expected in verdict.reason, (answer, verdict)
        assert verdict.passed is (expected == "ok")


EARLY_EXITS = [
    "import sys\nsys.exit(0)",
    "import os\nos._exit(0)",
    "raise SystemExit",
    "raise SystemExit(0)",
    "exit()",
    "import threading, os\nthreading.Thread(target=lambda: os._exit(0)).start()\n"
    "import time\ntime.sleep(5)",
    "import builtins\nbuiltins.AssertionError = Exception\nraise KeyboardInterrupt",
]


@pytest.mark.parametrize("answer", EARLY_EXITS)
def test_leaving_before_the_tests_fails_even_when_they_would_pass(answer):
    verdict = check_answer(py_task("assert True"), answer, LIMITS)
    assert not verdict.passed and verdict.reason


def test_forged_completion_fails():
    """Writing a fake completion line to every descriptor, or parking the harness's own
    bookkeeping early, does not pass (the nonce is unknown, the frame check fails)."""
    answers = [
        "import os\nfor fd in range(3, 64):\n    try:\n"
        "        os.write(fd, b'0' * 32 + b' OK\\n')\n    except OSError:\n        pass\n"
        "os._exit(0)",
        "import sys\nframe = sys._getframe(1)\nframe.f_globals['PARK_LINE'] = frame.f_lineno\n"
        "frame.f_locals['park']()",
        "def f(x):\n    return 0\nimport builtins\n"
        "builtins.AssertionError = type('X', (Exception,), {})",
    ]
    verdicts = check_answers([(py_task("assert f(1) == 1"), a) for a in answers], LIMITS)
    assert [v.passed for v in verdicts] == [False, False, False]


def test_rebinding_builtins_does_not_break_the_tests():
    answer = ("import builtins\nbuiltins.len = lambda x: 0\n__builtins__ = {}\n"
              "def f(x):\n    return x")
    assert check_answer(py_task("assert len([f(1), 2]) == 2"), answer, LIMITS).passed


# --- hostile answers ---------------------------------------------------------------------------

def test_timeouts_in_a_parallel_batch_keep_the_order():
    """Runaway Python and SQL time out (the caller does not hang); quick answers in the same
    batch keep their verdicts and their places."""
    task = py_task("assert f() == 1")
    pairs = [(task, "def f():\n    return 1"),
             (task, "while True:\n    pass"),
             (task, "def f():\n    return 2"),
             (task, "import threading\nfor _ in range(3):\n    threading.Thread(target=exec, "
                    "args=('while 1: pass',), daemon=True).start()\nwhile True:\n    pass"),
             (sql_task("", [[1]]), "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
                                   " SELECT count(*) FROM c;"),
             (task, "import time\ntime.sleep(60)"),
             (task, "def f():\n    return 1"),
             (sql_task("", [[1]]), "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
                                   " SELECT x FROM c")]
    start = time.monotonic()
    verdicts = check_answers(pairs, Limits(seconds=3), workers=len(pairs))  # 3 s: 4 CPU hogs run
    assert time.monotonic() - start < 20
    assert [v.passed for v in verdicts] == [True, False, False, False, False, False, True, False]
    for i in (1, 4, 5, 7):
        assert "timeout after 3s" in verdicts[i].reason, verdicts[i]
    # threads that release the GIL could reach RLIMIT_CPU (seconds + 1) before the wall clock
    assert "timeout" in verdicts[3].reason or "CPU" in verdicts[3].reason, verdicts[3]
    assert check_answers([], LIMITS) == []


def test_fork_bomb_and_subprocesses_are_refused():
    answers = ["import os\nwhile True:\n    os.fork()",
               "import subprocess\nsubprocess.run(['sh', '-c', 'echo hi'])",
               "import os\nos.system('true')",
               "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
               "import _posixsubprocess\n_posixsubprocess.fork_exec()"]
    start = time.monotonic()
    verdicts = check_answers([(py_task("assert True"), a) for a in answers], LIMITS)
    assert time.monotonic() - start < 30
    assert [v.passed for v in verdicts] == [False] * len(answers), verdicts


def test_memory_bomb_fails():
    for answer in ["x = bytearray(8 << 30)", "x = []\nwhile True:\n    x.append(' ' * (1 << 20))"]:
        result = run_python(answer, Limits(seconds=10, memory_mb=256))
        assert not result.ok and "Memory" in result.reason, result


def test_huge_output_is_capped():
    limits = Limits(seconds=10, output_bytes=64 << 10)
    result = run_python("while True:\n    print('x' * 10000)", limits)
    assert not result.ok and "output limit" in result.reason
    assert len(result.stdout) <= limits.output_bytes
    result = run_python("import sys\nsys.stderr.write('e' * (1 << 22))", limits)
    assert not result.ok and len(result.stderr) <= limits.output_bytes


def test_files_outside_the_sandbox_are_neither_written_nor_deleted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the caller's working directory
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    target = tmp_path / "evil.txt"
    answers = [f"open({str(target)!r}, 'w').write('x')",
               f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
               f"import os\nos.close(os.open({str(target)!r}, os.O_CREAT | os.O_WRONLY))",
               f"import os\nos.symlink('/etc/passwd', 'link')\nos.rename('link', {str(target)!r})",
               f"import os\nos.remove({str(victim)!r})",
               f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
               f"import os\nos.rename({str(victim)!r}, 'stolen')",
               f"print(open({str(victim)!r}).read())"]
    verdicts = check_answers([(py_task("assert True"), a) for a in answers], LIMITS)
    assert [v.passed for v in verdicts] == [False] * len(answers), verdicts
    assert victim.read_text() == "precious"
    assert not target.exists() and not target.is_symlink()
    assert "precious" not in "".join(v.reason for v in verdicts)


def test_writing_inside_the_sandbox_works_and_is_cleaned_up():
    result = run_python("import os, tempfile\nopen('a.txt', 'w').write('hi')\n"
                        "assert open('a.txt').read() == 'hi'\nos.mkdir('d')\n"
                        "tempfile.mkstemp()\nprint(os.getcwd())", LIMITS)
    assert result.ok, result
    assert not Path(result.stdout.strip()).exists()


def test_sqlite_attach_from_python_cannot_create_files(tmp_path):
    layers = sandbox_layers()
    if not any(layer.startswith(("landlock", "uid=")) for layer in layers):
        pytest.skip(f"needs Landlock or an unprivileged uid, this machine gives {layers}")
    target = tmp_path / "x.db"
    answer = (f"import sqlite3\nc = sqlite3.connect(':memory:')\n"
              f"c.execute(\"ATTACH DATABASE '{target}' AS x\")\nc.execute('CREATE TABLE x.t(a)')")
    assert not check_answer(py_task("assert True"), answer, LIMITS).passed
    assert not target.exists()


def test_network_is_unreachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        answers = [f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
                   f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))",
                   f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                   f"s.sendto(b'x', ('127.0.0.1', {port}))",
                   "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)"]
        verdicts = check_answers([(py_task("assert True"), a) for a in answers], LIMITS)
        assert [v.passed for v in verdicts] == [False] * len(answers), verdicts
        server.settimeout(0.3)
        with pytest.raises(TimeoutError):
            server.accept()


def test_signals_do_not_reach_the_caller():
    got = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
    try:
        pid = os.getpid()
        answers = [f"import os, signal\nos.kill({pid}, signal.SIGUSR1)",
                   f"import os, signal\nos.killpg(os.getpgid({pid}), signal.SIGUSR1)",
                   "import os, signal\nos.kill(os.getppid(), signal.SIGUSR1)"]
        verdicts = check_answers([(py_task("assert True"), a) for a in answers], LIMITS)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert got == []
    assert not verdicts[0].passed and not verdicts[1].passed


def test_sql_attach_and_vacuum_into_cannot_create_files(tmp_path):
    target = tmp_path / "x.db"
    task = sql_task("CREATE TABLE t(a);", [[1]])
    answer = f"ATTACH DATABASE '{target}' AS x; CREATE TABLE x.t(a);"
    assert "not a query" in check_answer(task, answer, LIMITS).reason
    for setup, query in [("", f"ATTACH DATABASE '{target}' AS x"),
                         (f"ATTACH DATABASE '{target}' AS x; CREATE TABLE x.t(a);", "SELECT 1"),
                         ("CREATE TABLE t(a);", f"VACUUM INTO '{target}'"),
                         ("", "SELECT load_extension('/tmp/x')")]:
        result = run_sql(setup, query, LIMITS)
        assert result.rows is None and result.run.reason, result
    assert not target.exists()


def test_huge_sql_result_is_capped():
    query = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
             "SELECT x, 'padding padding' FROM c")
    result = run_sql("", query, Limits(output_bytes=64 << 10))
    assert result.rows is None and "too large" in result.run.reason


# --- the package itself ------------------------------------------------------------------------

def test_pass_rates():
    tasks = [py_task("assert True"), py_task("assert True"), sql_task("", [[1]])]
    verdicts = [Verdict(True, "ok"), Verdict(False, "x"), Verdict(True, "ok")]
    assert pass_rates(tasks, verdicts) == {"python_expert": 0.5, "sql_expert": 1.0,
                                           "all": pytest.approx(2 / 3)}
    assert pass_rates([], []) == {"all": 0.0}
    with pytest.raises(ValueError):
        pass_rates(tasks, verdicts[:2])


def test_limits_are_validated():
    for bad in [{"seconds": 0}, {"memory_mb": 1}, {"output_bytes": 10}]:
        with pytest.raises(ValueError):
            Limits(**bad)


def test_package_imports_no_heavy_dependency():
    code = ("import sys, fedmoe_flwr.execution; print(sorted(m for m in "
            "('torch', 'transformers', 'flwr', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def _runtime_code(code: types.CodeType):
    """Code objects nested in a factory that run later (comprehensions run at build time)."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if not const.co_name.startswith("<") or const.co_name == "<lambda>":
                yield const
            yield from _runtime_code(const)


def test_audit_hook_looks_up_no_global_name_when_it_runs():
    """The answer can patch modules, builtins and the child's globals; the hook's closures
    must depend on none of them."""
    factories = [_child._make_realpath, _child._make_checker, _child._make_handlers,
                 _child._make_policy]
    for factory in factories:
        for code in _runtime_code(factory.__code__):
            names = [i.argval for i in dis.get_instructions(code)
                     if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
            assert names == [], (factory.__name__, code.co_name, names)


def test_main_thread_reads_only_plain_locals_once_the_answer_runs():
    """After the gate opens, the main thread (which holds the nonce) must not look up a
    global, builtin or closure cell: the answer could have replaced any of those with an
    object whose methods run the answer's code in the main thread."""
    instructions = list(dis.get_instructions(_child._run_python))
    gate = next(i for i, ins in enumerate(instructions)
                if ins.opname in ("LOAD_DEREF", "LOAD_FAST") and ins.argval == "gate"
                and instructions[i + 1].argval == "release")
    after = [ins for ins in instructions[gate + 2:] if ins.opname.startswith("LOAD_")
             and ins.opname not in ("LOAD_FAST", "LOAD_CONST", "LOAD_METHOD", "LOAD_ATTR")]
    assert after == []
    attributes = {ins.argval for ins in instructions[gate + 2:]
                  if ins.opname in ("LOAD_METHOD", "LOAD_ATTR")}
    assert attributes <= {"acquire", "f_lineno"}  # a C lock's method, a real frame's field


def test_park_line_is_the_last_line_of_work():
    source = Path(_child.__file__).read_text().splitlines()
    assert source[_child.PARK_LINE - 1].strip().startswith("park()")
