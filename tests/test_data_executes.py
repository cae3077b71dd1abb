"""Every SQL and Python reference of the training data executes (data/verify.py)."""

import json
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(DATA))

import generate  # noqa: E402  (data/ is not a package)
from verify import (  # noqa: E402
    COMPILE_ONLY_REASONS,
    PyCheck,
    Sample,
    SqlCheck,
    check_python,
    describe_tables,
    states_schema,
    verify,
)


@pytest.fixture(scope="module")
def samples():
    return {d: generate.generate_samples(d) for d in ("python", "sql")}


def failures_text(failures) -> str:
    return f"{len(failures)} failing:\n" + "\n".join(str(f) for f in failures[:30])


def test_every_python_and_sql_reference_passes_its_check(samples):
    everything = samples["python"] + samples["sql"] + generate.bank_samples()
    failures = verify(everything)
    assert not failures, failures_text(failures)


def test_every_example_has_a_check_of_its_domain(samples):
    assert len(samples["python"]) == len(samples["sql"]) == generate.N_PER_DOMAIN
    assert all(isinstance(s.check, PyCheck) for s in samples["python"])
    assert all(isinstance(s.check, SqlCheck) for s in samples["sql"])
    for s in samples["sql"] + [b for b in generate.bank_samples() if isinstance(b.check, SqlCheck)]:
        # no vacuous check: the answer runs against tables, or its effect is queried
        assert describe_tables(s.check.setup) or s.check.after, s.prompt


def test_committed_jsonl_holds_only_prompt_and_reference(samples):
    for domain in ("python", "sql", "docs"):
        lines = (DATA / f"{domain}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == generate.N_PER_DOMAIN
        assert all(set(r) == {"prompt", "reference_code"} for r in rows)
        if domain in samples:
            assert [r["prompt"] for r in rows] == [s.prompt for s in samples[domain]]


def test_prompts_state_schema_and_signature(samples):
    templated_sql = [s for s in samples["sql"] if s.origin == "template"]
    templated_py = [s for s in samples["python"] if s.origin == "template"]
    assert len(templated_sql) > 600 and len(templated_py) > 600
    assert generate.schema_share(samples["sql"]) >= generate.SCHEMA_TARGET
    assert generate.signature_share(samples["python"]) >= generate.SIGNATURE_TARGET
    everyday = [s for s in samples["sql"] if s.origin == "everyday"]
    assert sum(states_schema(s.prompt, s.check.setup) for s in everyday) >= 0.1 * len(everyday)


def test_schema_and_signature_detectors_can_say_no():
    setup = "CREATE TABLE orders (id INTEGER, total REAL);"
    assert states_schema("Tables: orders(id, total). Sum the totals.", setup)
    assert not states_schema("Sum the totals of the orders.", setup)
    assert not states_schema("Tables: orders(id). Sum them.", setup)  # a column is missing
    assert generate.names_signature("Write `top_n(items, n)`.", "def top_n(items, n):\n    pass\n")
    assert not generate.names_signature("Write top_n.", "def top_n(items, n):\n    pass\n")
    assert not generate.names_signature("Write `top_k(xs)`.", "def top_n(items, n):\n    pass\n")


SQL_SETUP = ("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, age INTEGER);\n"
             "INSERT INTO users VALUES (1, 'a@x.io', 30), (2, 'b@x.io', 41);\n")


@pytest.mark.parametrize(("code", "expect", "after", "message"), [
    ("SELECT country FROM users;", "auto", "", "no such column: country"),
    ("SELECT * FROM users WHERE age > 90;", "auto", "", "returns no row"),
    ("UPDATE users SET age = 1 WHERE id = 99;", "auto", "", "changes no row"),
    ("DELETE FROM users WHERE email = 'nobody';", "changes", "", "changes no row"),
    ("CREATE INDEX idx_age ON users (age);", "auto",
     "SELECT 1 FROM sqlite_master WHERE name = 'idx_email'", "returns no row"),
    ("SELECT * FROM users WHERE created_at > now() - interval '30 days';", "auto", "",
     "OperationalError"),
])
def test_a_broken_sql_reference_is_reported(code, expect, after, message):
    good = Sample("good", "SELECT email FROM users WHERE age > 35;", SqlCheck(SQL_SETUP))
    bad = Sample("bad one", code, SqlCheck(SQL_SETUP, expect, after))
    failures = verify([good, bad])
    assert [f.prompt for f in failures] == ["bad one"]
    assert message in failures[0].error


def test_a_broken_python_reference_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        Sample("passes", "def add(a, b):\n    return a + b\n",
               PyCheck(then="assert add(1, 2) == 3\n")),
        Sample("wrong result", "def add(a, b):\n    return a - b\n",
               PyCheck(then="assert add(1, 2) == 3\n")),
        Sample("syntax error", "def add(a, b)\n    return a + b\n",
               PyCheck(compile_only="network")),
        Sample("missing fixture", "print(undefined_name)\n", PyCheck()),
        Sample("does not raise", "x = 1\n", PyCheck(raises="ValueError")),
        Sample("writes a file", "open('written-by-check.txt', 'w').write('x')\n", PyCheck()),
        Sample("reads its fixture", "text = open('in.txt').read()\n",
               PyCheck(then="assert text == 'hi'\n", files=(("in.txt", "hi"),))),
    ]
    failures = {f.prompt: f.error for f in check_python(cases)}
    assert set(failures) == {"wrong result", "syntax error", "missing fixture", "does not raise"}
    assert "AssertionError" in failures["wrong result"]
    assert "SyntaxError" in failures["syntax error"]
    assert "NameError" in failures["missing fixture"]
    assert not (tmp_path / "written-by-check.txt").exists()  # checks run in a temporary dir


def test_a_hanging_or_crashing_reference_costs_only_itself():
    cases = [
        Sample("hangs", "while True:\n    pass\n", PyCheck()),
        Sample("kills the runner", "import os\n\nos._exit(3)\n", PyCheck()),
        Sample("fine after them", "x = 2\n", PyCheck(then="assert x == 2\n")),
    ]
    failures = {f.prompt: f.error for f in check_python(cases, timeout=0.5)}
    assert set(failures) == {"hangs", "kills the runner"}
    assert "time limit" in failures["hangs"] and "runner died" in failures["kills the runner"]


def test_compile_only_is_the_exception_and_has_a_known_reason(samples):
    checks = {(s.code, s.check) for s in samples["python"] + generate.bank_samples()
              if isinstance(s.check, PyCheck)}
    only_compiled = [c for _, c in checks if c.compile_only]
    assert all(c.compile_only in COMPILE_ONLY_REASONS for c in only_compiled)
    assert len(only_compiled) <= 0.03 * len(checks)
    with pytest.raises(ValueError, match="not one of"):
        check_python([Sample("p", "x = 1\n", PyCheck(compile_only="too lazy"))])
