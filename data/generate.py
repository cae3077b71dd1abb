"""Generate the sample per-specialty datasets in ``data/``.

The files are the embedded training data of the default run: three clearly
distinct domains (Python code, SQL, technical documentation) in the original
FedMoE format, one JSON object per line with ``prompt`` and
``reference_code``.  Everything is drawn from a seeded ``random.Random`` so the
committed files are reproducible byte for byte::

    python data/generate.py            # rewrites data/{python,sql,docs}.jsonl
    python data/generate.py --check    # exits 1 if the committed files differ
    python data/generate.py --verify   # runs every SQL and Python reference (verify.py)

Variety matters more than volume: each domain mixes many task shapes, entity
names, schemas and phrasings, so an expert has to learn the domain rather than
one template.  Half of each main domain's examples are everyday requests from
``everyday.py`` (how people actually ask: "how do i ...", error messages,
library names, concept questions), half are the templated specifications below.

Every SQL and Python reference is executable, and checked by running it: each
example keeps (here, not in the JSONL) a ``verify.SqlCheck`` (the schema and sample
rows a SQL answer runs against, in sqlite) or a ``verify.PyCheck`` (fixtures and
asserts).  Most templated SQL prompts state that schema and most templated Python
prompts name the function's signature, in the varied ways users do.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from everyday import BANKS, everyday  # noqa: E402  (a sibling file, also run as a script)
from verify import (  # noqa: E402
    PyCheck,
    Sample,
    SqlCheck,
    names_signature,
    states_schema,
    verify,
)

HERE = Path(__file__).resolve().parent
SEED = 20261123
N_PER_DOMAIN = 1600
EVERYDAY_SHARE = 0.5  # of the main domains' examples: everyday requests (everyday.py)
SCHEMA_SHARE = 0.75  # templated SQL prompts that state the schema (when it has a table)
SIGNATURE_SHARE = 0.8  # templated Python prompts that name the signature
# What tests/test_data_executes.py holds the data to (`--verify` prints the measured shares).
SCHEMA_TARGET = 0.6  # share of templated SQL prompts naming every table and column used
SIGNATURE_TARGET = 0.6  # share of templated Python prompts naming `fn(args)` of the answer

# Entities with their fields: (name, [(field, sql type, python type)]).  The docs
# templates draw from this list; SQL and Python use the richer SPECS below.
ENTITIES: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("user", [("id", "INTEGER", "int"), ("email", "TEXT", "str"), ("age", "INTEGER", "int"),
              ("country", "TEXT", "str"), ("created_at", "DATE", "str")]),
    ("order", [("id", "INTEGER", "int"), ("user_id", "INTEGER", "int"),
               ("total", "NUMERIC(10,2)", "float"), ("status", "TEXT", "str"),
               ("placed_at", "DATE", "str")]),
    ("product", [("id", "INTEGER", "int"), ("name", "TEXT", "str"),
                 ("price", "NUMERIC(10,2)", "float"), ("category", "TEXT", "str"),
                 ("stock", "INTEGER", "int")]),
    ("employee", [("id", "INTEGER", "int"), ("name", "TEXT", "str"),
                  ("department", "TEXT", "str"), ("salary", "NUMERIC(12,2)", "float"),
                  ("hired_on", "DATE", "str")]),
    ("invoice", [("id", "INTEGER", "int"), ("customer_id", "INTEGER", "int"),
                 ("amount", "NUMERIC(10,2)", "float"), ("currency", "TEXT", "str"),
                 ("due_date", "DATE", "str")]),
    ("sensor_reading", [("id", "INTEGER", "int"), ("sensor_id", "TEXT", "str"),
                        ("temperature", "REAL", "float"), ("humidity", "REAL", "float"),
                        ("recorded_at", "TIMESTAMP", "str")]),
    ("ticket", [("id", "INTEGER", "int"), ("title", "TEXT", "str"),
                ("priority", "INTEGER", "int"), ("assignee", "TEXT", "str"),
                ("opened_at", "DATE", "str")]),
    ("book", [("id", "INTEGER", "int"), ("title", "TEXT", "str"), ("author", "TEXT", "str"),
              ("year", "INTEGER", "int"), ("rating", "REAL", "float")]),
    ("shipment", [("id", "INTEGER", "int"), ("order_id", "INTEGER", "int"),
                  ("carrier", "TEXT", "str"), ("weight_kg", "REAL", "float"),
                  ("shipped_at", "DATE", "str")]),
    ("patient", [("id", "INTEGER", "int"), ("name", "TEXT", "str"),
                 ("blood_type", "TEXT", "str"), ("weight_kg", "REAL", "float"),
                 ("admitted_on", "DATE", "str")]),
    ("transaction", [("id", "INTEGER", "int"), ("account_id", "INTEGER", "int"),
                     ("amount", "NUMERIC(12,2)", "float"), ("kind", "TEXT", "str"),
                     ("booked_at", "TIMESTAMP", "str")]),
    ("course", [("id", "INTEGER", "int"), ("title", "TEXT", "str"),
                ("credits", "INTEGER", "int"), ("teacher", "TEXT", "str"),
                ("starts_on", "DATE", "str")]),
]

VERBS = ["Write", "Implement", "Create", "Give me", "Please write", "Can you write", "Code"]
SQL_VERBS = ["Write a SQL query", "Write an SQL statement", "Give me a query",
             "Compose a SQL query", "Write a SQLite query", "Please write a query",
             "Can you write a query", "I need a SQL query"]
DOC_VERBS = ["Write", "Draft", "Document", "Produce", "Please write", "Compose"]
PROJECTS = ["tidyframe", "quickcache", "loglens", "parcelpost", "skyline-db", "flowkit",
            "ledgerly", "pixelpipe", "ingestor", "metricsmith", "orbit-cli", "shelfscan"]
NUMERIC_PY = {"int", "float"}


def plural(name: str) -> str:
    """Table name for an entity (``order`` -> ``orders``)."""
    return name + ("es" if name.endswith("s") else "s")


def camel(name: str) -> str:
    """Class name for an entity (``sensor_reading`` -> ``SensorReading``)."""
    return "".join(part.capitalize() for part in name.split("_"))


def pick_entity(rng: random.Random) -> tuple[str, list[tuple[str, str, str]]]:
    """Return a random entity of ENTITIES and its fields (docs templates)."""
    return rng.choice(ENTITIES)


def numeric_field(rng: random.Random, fields: list[tuple[str, str, str]]) -> str:
    """A numeric field other than the id (docs templates)."""
    return rng.choice([f for f, _, t in fields[1:] if t in NUMERIC_PY] or ["id"])


# ------------------------------------------------------- entities of the SQL and Python data
# A field: (name, sql type, role, pool).  Roles: id; ref (a foreign key, values 1-4);
# num (pool = (low, high, decimals, thresholds strictly between low and high)); label
# (pool = distinct values); cat (pool = the few values rows share); date.
NAMES = ["Ada Byrne", "Bo Chen", "Cleo Diaz", "Dev Patel", "Eva Lind", "Femi Ade",
         "Gus Moreau", "Hana Sato", "Ivo Novak", "Jade Kim", "Kofi Mensah", "Lena Vogel"]
EMAILS = tuple(f"{n.split()[0].lower()}@{d}" for n, d in zip(
    NAMES, ["example.com", "mail.de", "inbox.fr", "example.org"] * 3, strict=True))
SPECS: dict[str, list[tuple]] = {
    "user": [("email", "TEXT", "label", EMAILS),
             ("age", "INTEGER", "num", (18, 80, 0, (21, 30, 40, 65))),
             ("country", "TEXT", "cat", ("DE", "FR", "US")), ("created_at", "DATE", "date")],
    "order": [("user_id", "INTEGER", "ref"),
              ("total", "NUMERIC(10,2)", "num", (5, 900, 2, (50, 100, 250, 500))),
              ("status", "TEXT", "cat", ("pending", "shipped", "delivered")),
              ("placed_at", "DATE", "date")],
    "product": [("name", "TEXT", "label", ("Desk Lamp", "Tea Kettle", "Yoga Mat", "Backpack",
                                            "Headphones", "Notebook", "Water Bottle", "Chair",
                                            "Umbrella", "Plant Pot", "Phone Case", "Board Game")),
                ("price", "NUMERIC(10,2)", "num", (2, 500, 2, (10, 25, 100, 250))),
                ("category", "TEXT", "cat", ("home", "outdoor", "office")),
                ("stock", "INTEGER", "num", (0, 200, 0, (5, 10, 50, 100)))],
    "employee": [("name", "TEXT", "label", NAMES),
                 ("department", "TEXT", "cat", ("Sales", "Engineering", "Support")),
                 ("salary", "NUMERIC(12,2)", "num", (30000, 150000, 2, (40000, 60000, 90000))),
                 ("hired_on", "DATE", "date")],
    "invoice": [("customer_id", "INTEGER", "ref"),
                ("amount", "NUMERIC(10,2)", "num", (10, 5000, 2, (100, 500, 1000, 2500))),
                ("currency", "TEXT", "cat", ("EUR", "USD", "GBP")), ("due_date", "DATE", "date")],
    "sensor_reading": [("sensor_id", "TEXT", "cat", ("s-01", "s-02", "s-03")),
                       ("temperature", "REAL", "num", (-5, 35, 1, (0, 10, 20, 30))),
                       ("humidity", "REAL", "num", (20, 95, 1, (30, 50, 70, 80))),
                       ("recorded_at", "TIMESTAMP", "date")],
    "ticket": [("title", "TEXT", "label", ("Login fails", "Slow search", "Broken link",
                                           "Typo on home page", "Export crashes", "Missing icon",
                                           "Wrong total", "Email bounce", "Timeout on upload",
                                           "Dark mode glitch", "Password reset", "API 500")),
               ("priority", "INTEGER", "num", (1, 5, 0, (2, 3, 4))),
               ("assignee", "TEXT", "cat", ("ana", "li", "omar")), ("opened_at", "DATE", "date")],
    "book": [("title", "TEXT", "label", ("Dune", "Beloved", "Emma", "Ulysses", "Solaris",
                                         "Kindred", "Ficciones", "Middlemarch", "Invisible Cities",
                                         "The Dispossessed", "Persuasion", "Jazz")),
             ("author", "TEXT", "cat", ("Le Guin", "Calvino", "Morrison")),
             ("year", "INTEGER", "num", (1950, 2025, 0, (1970, 1990, 2000, 2010))),
             ("rating", "REAL", "num", (1, 5, 1, (2, 3, 3.5, 4)))],
    "shipment": [("order_id", "INTEGER", "ref"),
                 ("carrier", "TEXT", "cat", ("DHL", "UPS", "FedEx")),
                 ("weight_kg", "REAL", "num", (0.5, 40, 1, (1, 5, 10, 20))),
                 ("shipped_at", "DATE", "date")],
    "patient": [("name", "TEXT", "label", NAMES),
                ("blood_type", "TEXT", "cat", ("A+", "O-", "B+")),
                ("weight_kg", "REAL", "num", (40, 120, 1, (50, 70, 90, 100))),
                ("admitted_on", "DATE", "date")],
    "transaction": [("account_id", "INTEGER", "ref"),
                    ("amount", "NUMERIC(12,2)", "num", (1, 3000, 2, (10, 100, 500, 1000))),
                    ("kind", "TEXT", "cat", ("deposit", "withdrawal", "fee")),
                    ("booked_at", "TIMESTAMP", "date")],
    "course": [("title", "TEXT", "label", ("Algebra", "Biology", "Chemistry", "Databases",
                                           "Economics", "French", "Geology", "History", "Italian",
                                           "Journalism", "Kinetics", "Logic")),
               ("credits", "INTEGER", "num", (1, 10, 0, (2, 3, 5, 6))),
               ("teacher", "TEXT", "cat", ("Okafor", "Berg", "Tanaka")),
               ("starts_on", "DATE", "date")],
    "customer": [("name", "TEXT", "label", NAMES),
                 ("country", "TEXT", "cat", ("NL", "ES", "JP")),
                 ("lifetime_value", "REAL", "num", (0, 20000, 2, (1000, 5000, 10000))),
                 ("signed_up_on", "DATE", "date")],
    "account": [("owner", "TEXT", "label", NAMES),
                ("branch", "TEXT", "cat", ("north", "south", "online")),
                ("balance", "NUMERIC(12,2)", "num", (-500, 25000, 2, (0, 1000, 10000))),
                ("opened_on", "DATE", "date")],
    "review": [("product_id", "INTEGER", "ref"),
               ("stars", "INTEGER", "num", (1, 5, 0, (2, 3, 4))),
               ("source", "TEXT", "cat", ("web", "app", "email")), ("posted_at", "DATE", "date")],
    "flight": [("code", "TEXT", "label", tuple(f"LH{400 + 7 * i}" for i in range(12))),
               ("origin", "TEXT", "cat", ("FRA", "JFK", "NRT")),
               ("delay_minutes", "INTEGER", "num", (0, 300, 0, (15, 30, 60, 120))),
               ("departs_at", "TIMESTAMP", "date")],
    "song": [("title", "TEXT", "label", ("Blue", "Halo", "Kites", "Runaway", "Ocean", "Static",
                                         "Velvet", "Echo", "Paper Moon", "Sundown", "Tides",
                                         "Wildfire")),
             ("artist", "TEXT", "cat", ("Mira", "The Owls", "DJ Kato")),
             ("plays", "INTEGER", "num", (100, 90000, 0, (1000, 10000, 50000))),
             ("released_on", "DATE", "date")],
    "subscription": [("user_id", "INTEGER", "ref"),
                     ("plan", "TEXT", "cat", ("basic", "pro", "team")),
                     ("monthly_fee", "NUMERIC(8,2)", "num", (5, 99, 2, (10, 20, 50))),
                     ("started_on", "DATE", "date")],
}
DATA_ENTITIES = list(SPECS)
N_ROWS = 12  # sample rows per table: 3 values of each category, 4 rows each
# (parent entity, child entity, foreign key in the child): joins and anti-joins.
RELATIONS = [("user", "order", "user_id"), ("order", "shipment", "order_id"),
             ("customer", "invoice", "customer_id"), ("account", "transaction", "account_id"),
             ("product", "review", "product_id"), ("user", "subscription", "user_id")]


@dataclass(frozen=True)
class Field:
    """One column of a table of the SQL and Python data (see SPECS)."""

    name: str
    sql: str
    role: str
    pool: tuple = ()

    def value(self, i: int) -> object:
        """The value of this field in sample row ``i`` (deterministic)."""
        if self.role == "id":
            return i + 1
        if self.role == "ref":
            return i % 4 + 1  # parents 5-12 have no children (anti-joins find them)
        if self.role == "num":
            low, high, decimals, _ = self.pool
            v = low + (high - low) * ((5 * i + 3) % N_ROWS) / (N_ROWS - 1)  # low..high, shuffled
            return round(v, decimals) if decimals else int(round(v))
        if self.role == "label":
            return self.pool[i]
        if self.role == "cat":
            return self.pool[i % 3]
        day = f"2026-{i % 12 + 1:02d}-{7 * i % 27 + 1:02d}"  # one row per month of 2026
        return f"{day} {(5 * i + 8) % 24:02d}:{13 * i % 60:02d}:00" if self.sql == "TIMESTAMP" else day


def sql_literal(value: object) -> str:
    """``value`` as a SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


@dataclass(frozen=True)
class Table:
    """A table with its sample rows: DDL for checks, and how prompts state it."""

    name: str
    fields: tuple[Field, ...]

    @property
    def columns(self) -> list[str]:
        """The column names, id first."""
        return [f.name for f in self.fields]

    def rows(self) -> list[dict]:
        """The sample rows (``N_ROWS``) as dicts."""
        return [{f.name: f.value(i) for f in self.fields} for i in range(N_ROWS)]

    def typed(self) -> str:
        """``users (id INTEGER PRIMARY KEY, email TEXT, ...)``."""
        cols = [f"{f.name} {f.sql}" + (" PRIMARY KEY" if f.role == "id" else "")
                for f in self.fields]
        return f"{self.name} ({', '.join(cols)})"

    def ddl(self) -> str:
        """``CREATE TABLE users (...);``."""
        return f"CREATE TABLE {self.typed()};"

    def signature(self) -> str:
        """``users(id, email, age)``."""
        return f"{self.name}({', '.join(self.columns)})"

    def setup(self) -> str:
        """The DDL and an INSERT of the sample rows."""
        values = ",\n  ".join("(" + ", ".join(sql_literal(v) for v in row.values()) + ")"
                              for row in self.rows())
        return f"{self.ddl()}\nINSERT INTO {self.name} VALUES\n  {values};\n"


@cache
def table(ent: str) -> Table:
    """The table of an entity of SPECS (``order`` -> ``orders``)."""
    return Table(plural(ent), (Field("id", "INTEGER", "id"),) + tuple(Field(*f) for f in SPECS[ent]))


def rows_of(ent: str) -> list[dict]:
    """An entity's sample rows as dicts (the Python fixtures)."""
    return table(ent).rows()


def fields_with(ent: str, *roles: str) -> list[Field]:
    return [f for f in table(ent).fields if f.role in roles]


def pick(rng: random.Random, ent: str, *roles: str) -> Field:
    """A random field of ``ent`` with one of ``roles``."""
    return rng.choice(fields_with(ent, *roles))


def pick_data_entity(rng: random.Random, *roles: str) -> str:
    """A random entity of SPECS that has a field of each of ``roles``."""
    return rng.choice([e for e in DATA_ENTITIES if all(fields_with(e, r) for r in roles)])


def sql_check(*tables: Table, extra: str = "", expect: str = "auto", after: str = "") -> SqlCheck:
    """The check of a templated SQL answer: the tables with their rows, then ``extra``."""
    return SqlCheck("".join(t.setup() for t in tables) + extra, expect, after)


def and_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lower_first(text: str) -> str:
    return text if text.startswith(("SQL", "I ")) else text[:1].lower() + text[1:]


def frame_sql(rng: random.Random, ask: str, tables: list[Table]) -> str:
    """Most of the time, state the schema the way users do around the request ``ask``."""
    if not tables or rng.random() >= SCHEMA_SHARE:
        return ask
    sigs = [t.signature() for t in tables]
    one = len(tables) == 1
    t0 = tables[0]
    forms = [
        lambda: f"Table{'' if one else 's'}: {'; '.join(sigs)}. {ask}",
        lambda: (f"Given a table `{t0.name}` with columns {', '.join(t0.columns)}, "
                 if one else "Given tables " + and_join(
                     [f"`{t.name}` ({', '.join(t.columns)})" for t in tables]) + ", ")
        + lower_first(ask),
        lambda: "Schema:\n" + "\n".join(t.ddl() for t in tables) + f"\n\nQuestion: {ask}",
        lambda: f"I have {and_join(sigs)}. {ask}",
        lambda: f"{ask}\nThe table{' is' if one else 's are'} {and_join(sigs)}.",
        lambda: "\n".join(f"-- {s}" for s in sigs) + f"\n{ask}",
        lambda: f"Using SQLite with {and_join([t.typed() for t in tables])}: {lower_first(ask)}",
        lambda: (f"My {t0.name} table has these columns: {', '.join(t0.columns)}. " if one
                 else f"My tables are {and_join(sigs)}. ") + ask,
    ]
    return rng.choice(forms)()


# ----------------------------------------------------------------------------- python


def py_type(f: Field) -> str:
    return {"INTEGER": "int", "TEXT": "str", "DATE": "str", "TIMESTAMP": "str"}.get(f.sql, "float")


def py_ask(rng: random.Random, name: str, params: list[str], does: str, typed: str = "") -> str:
    """A Python request for a function that ``does`` something; most name its signature."""
    verb = rng.choice(VERBS)
    if rng.random() >= SIGNATURE_SHARE:
        return f"{verb} a Python function that {does}."
    sig = f"`{name}({', '.join(params)})`"
    forms = [f"{verb} a Python function {sig} that {does}.", f"Implement {sig}: it {does}.",
             f"I need a function {sig} that {does}.", f"Python: {sig} - {does}.",
             f"Can you write {sig} in Python? It {does}.",
             f"Write a function with the signature {sig} that {does}."]
    if typed:
        forms.append(f"{verb} `def {typed}` that {does}.")
    return rng.choice(forms)


def rows_given(ent: str) -> str:
    return f"rows = {rows_of(ent)!r}\n"


def py_filter_sum(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "num")
    num = pick(rng, ent, "num").name
    thr = rng.choice(next(f for f in table(ent).fields if f.name == num).pool[3])
    fn = rng.choice(["total_", "sum_", "aggregate_"]) + num
    arg = plural(ent)
    does = (f"takes a list of {ent.replace('_', ' ')} dicts and returns the sum of `{num}` for "
            f"entries where `{num}` is above {thr}")
    prompt = py_ask(rng, fn, [arg], does, f"{fn}({arg}: list[dict]) -> float")
    code = (f"def {fn}({arg}: list[dict]) -> float:\n"
            f"    \"\"\"Sum `{num}` over {arg} whose {num} exceeds {thr}.\"\"\"\n"
            f"    return sum(item[\"{num}\"] for item in {arg} if item[\"{num}\"] > {thr})\n")
    expected = sum(r[num] for r in rows_of(ent) if r[num] > thr)
    then = (f"from math import isclose as _isclose\n\nassert _isclose({fn}(rows), {expected!r})\n"
            f"assert {fn}([]) == 0\n")
    return Sample(prompt, code, PyCheck(given=rows_given(ent), then=then))


def py_dataclass(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng)
    t, cls = table(ent), camel(ent)
    frozen = rng.random() < 0.5
    cols = ", ".join(t.columns)
    imm = " (immutable)" if frozen else ""
    if rng.random() < SIGNATURE_SHARE:
        prompt = rng.choice([f"{rng.choice(VERBS)} a Python dataclass `{cls}({cols})`{imm}.",
                             f"Define `{cls}({cols})` as a dataclass{imm}.",
                             f"I need a dataclass `{cls}({cols})`{imm} for my {plural(ent)}."])
    else:
        prompt = (f"{rng.choice(VERBS)} a Python dataclass for a {ent.replace('_', ' ')} with "
                  f"fields {cols}{imm}.")
    deco = "@dataclass(frozen=True)" if frozen else "@dataclass"
    body = "\n".join(f"    {f.name}: {py_type(f)}" for f in t.fields)
    code = (f"from dataclasses import dataclass\n\n\n{deco}\nclass {cls}:\n"
            f"    \"\"\"One {ent.replace('_', ' ')} record.\"\"\"\n\n{body}\n")
    then = (f"_row = {rows_of(ent)[0]!r}\n_obj = {cls}(**_row)\n"
            f"assert [getattr(_obj, k) for k in _row] == list(_row.values())\n"
            f"assert _obj == {cls}(**_row)\n")
    if frozen:
        then += ("from dataclasses import FrozenInstanceError as _Frozen\n\ntry:\n"
                 "    _obj.id = 0\nexcept _Frozen:\n    pass\nelse:\n"
                 "    raise AssertionError('instances can be changed')\n")
    else:
        then += "_obj.id = 0\nassert _obj.id == 0\n"
    return Sample(prompt, code, PyCheck(then=then))


def py_group_by(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "cat")
    key = pick(rng, ent, "cat").name
    fn = f"group_{plural(ent)}_by_{key}"
    does = (f"groups a list of {ent.replace('_', ' ')} dictionaries by their `{key}` value and "
            f"returns a dict mapping each {key} to its list of {plural(ent)}")
    prompt = py_ask(rng, fn, ["items"], does, f"{fn}(items: list[dict]) -> dict[str, list[dict]]")
    if rng.random() < 0.5:
        code = (f"from collections import defaultdict\n\n\n"
                f"def {fn}(items: list[dict]) -> dict[str, list[dict]]:\n"
                f"    groups: defaultdict[str, list[dict]] = defaultdict(list)\n"
                f"    for item in items:\n"
                f"        groups[item[\"{key}\"]].append(item)\n"
                f"    return dict(groups)\n")
    else:
        code = (f"def {fn}(items: list[dict]) -> dict[str, list[dict]]:\n"
                f"    groups: dict[str, list[dict]] = {{}}\n"
                f"    for item in items:\n"
                f"        groups.setdefault(item[\"{key}\"], []).append(item)\n"
                f"    return groups\n")
    expected: dict[str, list[dict]] = {}
    for row in rows_of(ent):
        expected.setdefault(row[key], []).append(row)
    then = f"assert {fn}(rows) == {expected!r}\nassert {fn}([]) == {{}}\n"
    return Sample(prompt, code, PyCheck(given=rows_given(ent), then=then))


STRING_SPECS = {  # kind: (what it does, body with {a} the argument, return type, test cases)
    "reverse_words": ("reverses the order of words in a string",
                      "    return \" \".join(reversed({a}.split()))\n", "str",
                      [("hello big world", "world big hello"), ("one", "one")]),
    "count_vowels": ("counts the vowels in a string, case-insensitively",
                     "    return sum(1 for ch in {a}.lower() if ch in \"aeiou\")\n", "int",
                     [("Hello World", 3), ("xyz", 0)]),
    "slugify": ("turns a title into a URL slug (lowercase, hyphen-separated, only letters and "
                "digits)", "    words = re.findall(r\"[a-z0-9]+\", {a}.lower())\n"
                "    return \"-\".join(words)\n", "str",
                [("Hello, World! 2026", "hello-world-2026"), ("  Fast   API ", "fast-api")]),
    "is_palindrome": ("checks whether a string is a palindrome, ignoring case and spaces",
                      "    cleaned = \"\".join(ch.lower() for ch in {a} if ch.isalnum())\n"
                      "    return cleaned == cleaned[::-1]\n", "bool",
                      [("A man a plan a canal Panama", True), ("python", False)]),
    "capitalize_words": ("capitalizes the first letter of every word",
                         "    return \" \".join(w[:1].upper() + w[1:] for w in {a}.split())\n",
                         "str", [("hello big world", "Hello Big World"), ("", "")]),
    "strip_digits": ("removes every digit from a string",
                     "    return \"\".join(ch for ch in {a} if not ch.isdigit())\n", "str",
                     [("a1b2c3", "abc"), ("2026 plan", " plan")]),
}


def string_function(kind: str, arg: str = "text") -> str:
    """The reference code of a STRING_SPECS function."""
    _, body, ret, _ = STRING_SPECS[kind]
    head = "import re\n\n\n" if kind == "slugify" else ""
    return f"{head}def {kind}({arg}: str) -> {ret}:\n{body.format(a=arg)}"


def py_string(rng: random.Random) -> Sample:
    kind = rng.choice(list(STRING_SPECS))
    arg = rng.choice(["text", "s", "value", "sentence", "line"])
    desc, _, ret, cases = STRING_SPECS[kind]
    prompt = py_ask(rng, kind, [arg], desc, f"{kind}({arg}: str) -> {ret}")
    then = "".join(f"assert {kind}({inp!r}) == {out!r}\n" for inp, out in cases)
    return Sample(prompt, string_function(kind, arg), PyCheck(then=then))


def py_file_io(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng)
    fmt = rng.choice(["csv", "json", "jsonl"])
    fn = f"load_{plural(ent)}"
    does = (f"reads {plural(ent).replace('_', ' ')} from a {fmt.upper()} file and returns them "
            f"as a list of dicts")
    prompt = py_ask(rng, fn, ["path"], does, f"{fn}(path: str | Path) -> list[dict]")
    head = "import csv" if fmt == "csv" else "import json"
    code = f"{head}\nfrom pathlib import Path\n\n\ndef {fn}(path: str | Path) -> list[dict]:\n"
    rows = rows_of(ent)
    if fmt == "csv":
        code += ("    with open(path, newline=\"\", encoding=\"utf-8\") as fh:\n"
                 "        return list(csv.DictReader(fh))\n")
        text = ",".join(rows[0]) + "\n" + "".join(
            ",".join(str(v) for v in r.values()) + "\n" for r in rows)
        rows = [{k: str(v) for k, v in r.items()} for r in rows]  # csv reads strings
    elif fmt == "json":
        code += "    return json.loads(Path(path).read_text(encoding=\"utf-8\"))\n"
        text = json.dumps(rows, indent=2)
    else:
        code += ("    with open(path, encoding=\"utf-8\") as fh:\n"
                 "        return [json.loads(line) for line in fh if line.strip()]\n")
        text = "".join(json.dumps(r) + "\n" for r in rows) + "\n"
    name = f"{plural(ent)}.{fmt}"
    then = f"assert {fn}({name!r}) == {rows!r}\nassert {fn}(Path({name!r}))[0] == {rows[0]!r}\n"
    return Sample(prompt, code, PyCheck(then=then, files=((name, text),)))


def py_recursion(rng: random.Random) -> Sample:
    kind = rng.choice(["factorial", "fibonacci", "flatten", "depth", "power_set"])
    verb = rng.choice(VERBS)
    if kind == "factorial":
        n = rng.choice(["n", "k", "number"])
        return Sample(py_ask(rng, "factorial", [n], f"computes the factorial of {n} recursively "
                             f"and rejects negative input"),
                      f"def factorial({n}: int) -> int:\n    if {n} < 0:\n"
                      f"        raise ValueError(\"{n} must be non-negative\")\n"
                      f"    return 1 if {n} <= 1 else {n} * factorial({n} - 1)\n",
                      PyCheck(then="assert factorial(5) == 120 and factorial(0) == 1\ntry:\n"
                              "    factorial(-1)\nexcept ValueError:\n    pass\nelse:\n"
                              "    raise AssertionError('no ValueError')\n"))
    if kind == "fibonacci":
        fib_check = PyCheck(then="assert [fibonacci(i) for i in range(10)] == "
                                 "[0, 1, 1, 2, 3, 5, 8, 13, 21, 34]\nassert fibonacci(50) == "
                                 "12586269025\n")
        if rng.random() < 0.5:
            return Sample(rng.choice([f"{verb} a memoized fibonacci function in Python.",
                                      f"{verb} `fibonacci(n)` with memoization (lru_cache)."]),
                          "from functools import lru_cache\n\n\n@lru_cache(maxsize=None)\n"
                          "def fibonacci(n: int) -> int:\n"
                          "    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n",
                          fib_check)
        return Sample(rng.choice([f"{verb} an iterative fibonacci function in Python.",
                                  f"{verb} `fibonacci(n)` iteratively, without recursion."]),
                      "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
                      "        a, b = b, a + b\n    return a\n", fib_check)
    if kind == "flatten":
        return Sample(py_ask(rng, "flatten", ["items"], "flattens arbitrarily nested lists"),
                      "def flatten(items: list) -> list:\n    out = []\n    for item in items:\n"
                      "        if isinstance(item, list):\n            out.extend(flatten(item))\n"
                      "        else:\n            out.append(item)\n    return out\n",
                      PyCheck(then="assert flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]\n"
                                   "assert flatten([]) == []\n"))
    if kind == "depth":
        return Sample(py_ask(rng, "max_depth", ["obj"], "returns the maximum nesting depth of a "
                             "dict"),
                      "def max_depth(obj: object) -> int:\n    if not isinstance(obj, dict) or not obj:\n"
                      "        return 0\n    return 1 + max(max_depth(v) for v in obj.values())\n",
                      PyCheck(then="assert max_depth({}) == 0 and max_depth({'a': 1}) == 1\n"
                                   "assert max_depth({'a': {'b': {'c': 1}}, 'd': 2}) == 3\n"))
    return Sample(py_ask(rng, "power_set", ["items"], "returns the power set of a list"),
                  "def power_set(items: list) -> list[list]:\n    if not items:\n        return [[]]\n"
                  "    rest = power_set(items[1:])\n    return rest + [[items[0]] + r for r in rest]\n",
                  PyCheck(then="_subsets = power_set([1, 2, 3])\nassert len(_subsets) == 8\n"
                               "assert sorted(map(sorted, _subsets))[0] == [] and [1, 2, 3] in "
                               "_subsets\n"))


def py_safe_divide(rng: random.Random) -> Sample:
    d = rng.choice(["0.0", "None", "float('nan')"])
    code = (f"def safe_divide(a: float, b: float) -> float | None:\n    try:\n"
            f"        return a / b\n    except ZeroDivisionError:\n        return {d}\n")
    zero = {"0.0": "assert safe_divide(1, 0) == 0.0\n", "None": "assert safe_divide(1, 0) is None\n",
            "float('nan')": "from math import isnan as _isnan\n\nassert _isnan(safe_divide(1, 0))\n"}
    return Sample(f"{rng.choice(VERBS)} `safe_divide(a, b)` that returns {d} instead of raising "
                  f"on division by zero.", code,
                  PyCheck(then="assert safe_divide(6, 3) == 2\n" + zero[d]))


def py_errors(rng: random.Random) -> Sample:
    kind = rng.choice(["safe_divide", "parse_int", "read_config", "retry"])
    if kind == "safe_divide":
        return py_safe_divide(rng)
    if kind == "parse_int":
        default = rng.choice([0, -1, "None"])
        return Sample(f"{rng.choice(VERBS)} `parse_int(text, default={default})` that converts a "
                      f"string to int and falls back to the default on bad input.",
                      f"def parse_int(text: str, default: int | None = {default}) -> int | None:\n"
                      f"    try:\n        return int(text.strip())\n"
                      f"    except (ValueError, AttributeError):\n        return default\n",
                      PyCheck(then=f"assert parse_int(' 42 ') == 42\n"
                                   f"assert parse_int('4x') == {default}\n"
                                   f"assert parse_int(None) == {default}\n"
                                   f"assert parse_int('x', default=7) == 7\n"))
    if kind == "read_config":
        proj = rng.choice(PROJECTS)
        prompt = (f"{rng.choice(VERBS)} a function that loads `{proj}.toml` and raises a clear "
                  f"error naming the file when it is missing.")
        if rng.random() < SIGNATURE_SHARE:
            prompt = prompt.replace("a function that", "`load_config(path)` that", 1)
        then = (f"assert load_config() == {{'name': {proj!r}, 'workers': 4}}\ntry:\n"
                f"    load_config(Path('missing.toml'))\nexcept FileNotFoundError as err:\n"
                f"    assert 'missing.toml' in str(err)\nelse:\n"
                f"    raise AssertionError('no FileNotFoundError')\n")
        return Sample(prompt,
                      f"import tomllib\nfrom pathlib import Path\n\n\n"
                      f"def load_config(path: Path = Path(\"{proj}.toml\")) -> dict:\n"
                      f"    if not path.exists():\n"
                      f"        raise FileNotFoundError(f\"config file not found: {{path}}\")\n"
                      f"    with path.open(\"rb\") as fh:\n        return tomllib.load(fh)\n",
                      PyCheck(then=then, files=((f"{proj}.toml",
                                                 f"name = \"{proj}\"\nworkers = 4\n"),)))
    return py_retry(rng)


def py_retry(rng: random.Random) -> Sample:
    tries = rng.choice([3, 5, 7])
    then = (f"_calls = []\n\n\n@retry(times={tries})\ndef _flaky():\n    _calls.append(1)\n"
            f"    if len(_calls) < {tries}:\n        raise ConnectionError('down')\n"
            f"    return 'ok'\n\n\nassert _flaky() == 'ok' and len(_calls) == {tries}\n"
            f"_calls.clear()\n\n\n@retry(times=2)\ndef _broken():\n    _calls.append(1)\n"
            f"    raise ValueError('always')\n\n\ntry:\n    _broken()\nexcept ValueError:\n"
            f"    assert len(_calls) == 2\nelse:\n    raise AssertionError('no error raised')\n")
    verb = rng.choice(VERBS)
    return Sample(rng.choice([f"{verb} a retry decorator that retries a function up to {tries} "
                              f"times with exponential backoff.",
                              f"{verb} a decorator `retry(times={tries}, base=0.1)` that retries "
                              f"the wrapped function with exponential backoff."]),
                  f"import functools\nimport time\n\n\ndef retry(times: int = {tries}, base: float = 0.1):\n"
                  f"    def decorate(fn):\n        @functools.wraps(fn)\n"
                  f"        def wrapper(*args, **kwargs):\n            for attempt in range(times):\n"
                  f"                try:\n                    return fn(*args, **kwargs)\n"
                  f"                except Exception:\n                    if attempt == times - 1:\n"
                  f"                        raise\n                    time.sleep(base * 2 ** attempt)\n"
                  f"        return wrapper\n    return decorate\n", PyCheck(then=then))


def py_generators(rng: random.Random) -> Sample:
    kind = rng.choice(["chunked", "window", "read_lines", "take"])
    size = rng.choice([2, 3, 4, 8, 16, 100])
    if kind == "chunked":
        return Sample(py_ask(rng, "chunked", ["items", f"size={size}"],
                             f"is a generator yielding chunks of {size} items from an iterable"),
                      CHUNKED.format(size=size),
                      PyCheck(then=f"assert list(chunked(range(5), 2)) == [[0, 1], [2, 3], [4]]\n"
                                   f"assert [len(c) for c in chunked(range({2 * size + 1}))] == "
                                   f"[{size}, {size}, 1]\n"))
    if kind == "window":
        return Sample(py_ask(rng, "sliding_window", ["items", f"width={size}"],
                             f"yields a sliding window of width {size} over a list"),
                      f"def sliding_window(items: list, width: int = {size}):\n"
                      f"    for start in range(len(items) - width + 1):\n"
                      f"        yield items[start:start + width]\n",
                      PyCheck(then="assert list(sliding_window([1, 2, 3, 4], 2)) == "
                                   "[[1, 2], [2, 3], [3, 4]]\n"
                                   f"assert len(list(sliding_window(list(range({size}))))) == 1\n"))
    if kind == "read_lines":
        return Sample(py_ask(rng, "iter_lines", ["path"], "is a generator that lazily yields "
                             "non-empty, stripped lines of a large text file"),
                      "def iter_lines(path: str):\n    with open(path, encoding=\"utf-8\") as fh:\n"
                      "        for line in fh:\n            if line.strip():\n"
                      "                yield line.strip()\n",
                      PyCheck(then="assert list(iter_lines('big.txt')) == ['first', 'second']\n",
                              files=(("big.txt", "  first \n\n\nsecond\n   \n"),)))
    return Sample(f"{rng.choice(VERBS)} `take(n, iterable)` that returns the first n items as a list.",
                  "from itertools import islice\n\n\ndef take(n: int, iterable) -> list:\n"
                  "    return list(islice(iterable, n))\n",
                  PyCheck(then="from itertools import count as _count\n\n"
                               "assert take(3, _count()) == [0, 1, 2] and take(5, 'ab') == ['a', 'b']\n"))


CHUNKED = ("from collections.abc import Iterable, Iterator\nfrom itertools import islice\n\n\n"
           "def chunked(items: Iterable, size: int = {size}) -> Iterator[list]:\n"
           "    it = iter(items)\n    while chunk := list(islice(it, size)):\n"
           "        yield chunk\n")


def py_sorting(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng)
    key = rng.choice(table(ent).columns[1:])
    desc = rng.random() < 0.5
    top = rng.choice([None, 3, 5, 10])
    fn = f"sort_{plural(ent)}_by_{key}"
    extra = f" and returns only the first {top}" if top else ""
    does = f"sorts {plural(ent)} by `{key}` {'descending' if desc else 'ascending'}{extra}"
    prompt = py_ask(rng, fn, ["items"], does, f"{fn}(items: list[dict]) -> list[dict]")
    sl = f"[:{top}]" if top else ""
    code = (f"def {fn}(items: list[dict]) -> list[dict]:\n"
            f"    return sorted(items, key=lambda item: item[\"{key}\"]"
            f"{', reverse=True' if desc else ''}){sl}\n")
    expected = sorted(rows_of(ent), key=lambda r: r[key], reverse=desc)[:top]
    then = f"assert {fn}(rows) == {expected!r}\nassert {fn}([]) == []\n"
    return Sample(prompt, code, PyCheck(given=rows_given(ent), then=then))


REGEX_SPECS = {  # kind: (pattern, sample text, matches)
    "emails": (r"[\w.+-]+@[\w-]+\.[\w.]+", "mail ann@example.com or bo.li+x@mail.co.uk now",
               ["ann@example.com", "bo.li+x@mail.co.uk"]),
    "dates": (r"\d{4}-\d{2}-\d{2}", "from 2026-01-05 to 2026-02-10, not 2026/03/01",
              ["2026-01-05", "2026-02-10"]),
    "hashtags": (r"#\w+", "loving #python and #sql_tips!", ["#python", "#sql_tips"]),
    "ipv4": (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "hosts 10.0.0.1 and 192.168.1.20 are up",
             ["10.0.0.1", "192.168.1.20"]),
    "numbers": (r"-?\d+(?:\.\d+)?", "-3 apples cost 4.50 or 12", ["-3", "4.50", "12"]),
}


def py_regex(rng: random.Random) -> Sample:
    kind = rng.choice(list(REGEX_SPECS))
    pattern, text, found = REGEX_SPECS[kind]
    fn = f"extract_{kind}"
    prompt = py_ask(rng, fn, ["text"], f"extracts all {kind} from a text with a regular expression",
                    f"{fn}(text: str) -> list[str]")
    return Sample(prompt, f"import re\n\n_PATTERN = re.compile(r\"{pattern}\")\n\n\n"
                          f"def {fn}(text: str) -> list[str]:\n    return _PATTERN.findall(text)\n",
                  PyCheck(then=f"assert {fn}({text!r}) == {found!r}\nassert {fn}('') == []\n"))


PYTEST_CASES = {  # function under test: (call arguments, expected, its reference code)
    "slugify": ("\"Hello, World!\"", "\"hello-world\"", string_function("slugify")),
    "parse_int": ("\" 42 \"", "42", "def parse_int(text, default=0):\n    try:\n"
                  "        return int(text.strip())\n    except (ValueError, AttributeError):\n"
                  "        return default\n"),
    "chunked": ("range(5), 2", "[[0, 1], [2, 3], [4]]", CHUNKED.format(size=2)),
    "reverse_words": ("\"a b c\"", "\"c b a\"", string_function("reverse_words")),
    "safe_divide": ("6, 3", "2", "def safe_divide(a, b):\n    try:\n        return a / b\n"
                    "    except ZeroDivisionError:\n        return None\n"),
}


def py_pytest(rng: random.Random) -> Sample:
    fn = rng.choice(list(PYTEST_CASES))
    arg, expected, impl = PYTEST_CASES[fn]
    call = f"list({fn}({arg}))" if fn == "chunked" else f"{fn}({arg})"
    mod = rng.choice(["mylib", "helpers", "textkit", "utils_core"])
    return Sample(f"Write a pytest test for `{fn}` from module `{mod}`.",
                  f"import pytest\n\nfrom {mod} import {fn}\n\n\n"
                  f"def test_{fn}_basic() -> None:\n    assert {call} == {expected}\n",
                  PyCheck(then=f"test_{fn}_basic()\n", files=((f"{mod}.py", impl),),
                          needs=("pytest",)))


def py_asyncio(rng: random.Random) -> Sample:
    n = rng.choice([3, 5, 10, 20])
    verb = rng.choice(VERBS)
    if rng.random() < 0.5:
        return Sample(f"{verb} an asyncio function that fetches {n} URLs concurrently with "
                      f"aiohttp and returns their status codes.",
                      f"import asyncio\n\nimport aiohttp\n\n\n"
                      f"async def fetch_statuses(urls: list[str], limit: int = {n}) -> list[int]:\n"
                      f"    sem = asyncio.Semaphore(limit)\n"
                      f"    async with aiohttp.ClientSession() as session:\n"
                      f"        async def one(url: str) -> int:\n            async with sem:\n"
                      f"                async with session.get(url) as resp:\n"
                      f"                    return resp.status\n"
                      f"        return await asyncio.gather(*(one(u) for u in urls))\n",
                      PyCheck(needs=("aiohttp",), compile_only="network"))
    prompt = py_ask(rng, "gather_limited", ["coros", f"limit={n}"],
                    f"awaits coroutines concurrently, at most {n} at a time, and returns their "
                    f"results in order")
    then = ("import asyncio as _asyncio\n\n_running = []\n\n\nasync def _job(x):\n"
            "    _running.append(x)\n    await _asyncio.sleep(0)\n"
            "    assert len(_running) <= 2\n    _running.remove(x)\n    return 2 * x\n\n\n"
            "assert _asyncio.run(gather_limited([_job(i) for i in range(5)], 2)) == [0, 2, 4, 6, 8]\n")
    return Sample(prompt, f"import asyncio\n\n\nasync def gather_limited(coros, limit: int = {n}) -> list:\n"
                          f"    sem = asyncio.Semaphore(limit)\n\n    async def one(coro):\n"
                          f"        async with sem:\n            return await coro\n\n"
                          f"    return await asyncio.gather(*(one(c) for c in coros))\n",
                  PyCheck(then=then))


def py_argparse(rng: random.Random) -> Sample:
    proj = rng.choice(PROJECTS)
    opt = rng.choice(["--verbose", "--dry-run", "--limit", "--output"])
    extra = {"--verbose": "action=\"store_true\"", "--dry-run": "action=\"store_true\"",
             "--limit": "type=int, default=10", "--output": "default=\"out.txt\""}[opt]
    attr = opt[2:].replace("-", "_")
    check = {"--verbose": "assert parse_args(['in.txt', '--verbose']).verbose is True\n"
                          "assert parse_args(['in.txt']).verbose is False\n",
             "--dry-run": "assert parse_args(['in.txt', '--dry-run']).dry_run is True\n",
             "--limit": "assert parse_args(['in.txt']).limit == 10\n"
                        "assert parse_args(['in.txt', '--limit', '3']).limit == 3\n",
             "--output": "assert parse_args(['in.txt']).output == 'out.txt'\n"}[opt]
    how = rng.choice(["an argparse command line", "`parse_args(argv)` with argparse"])
    return Sample(f"{rng.choice(VERBS)} {how} for `{proj}` that takes an input "
                  f"path and a `{opt}` option.",
                  f"import argparse\n\n\ndef parse_args(argv: list[str] | None = None) -> argparse.Namespace:\n"
                  f"    parser = argparse.ArgumentParser(prog=\"{proj}\")\n"
                  f"    parser.add_argument(\"path\", help=\"input file\")\n"
                  f"    parser.add_argument(\"{opt}\", {extra})\n"
                  f"    return parser.parse_args(argv)\n",
                  PyCheck(then=f"assert parse_args(['in.txt']).path == 'in.txt'\n{check}"
                               f"assert hasattr(parse_args(['x']), {attr!r})\n"))


def py_dict_ops(rng: random.Random) -> Sample:
    kind = rng.choice(["invert", "merge", "count", "nested_get"])
    verb = rng.choice(VERBS)
    if kind == "invert":
        return Sample(py_ask(rng, "invert", ["mapping"], "inverts a dict (values become keys)"),
                      "def invert(mapping: dict) -> dict:\n"
                      "    return {value: key for key, value in mapping.items()}\n",
                      PyCheck(then="assert invert({'a': 1, 'b': 2}) == {1: 'a', 2: 'b'}\n"))
    if kind == "merge":
        return Sample(py_ask(rng, "deep_merge", ["a", "b"], "deep-merges two nested dicts"),
                      "def deep_merge(a: dict, b: dict) -> dict:\n    out = dict(a)\n"
                      "    for key, value in b.items():\n"
                      "        if isinstance(value, dict) and isinstance(out.get(key), dict):\n"
                      "            out[key] = deep_merge(out[key], value)\n        else:\n"
                      "            out[key] = value\n    return out\n",
                      PyCheck(then="_a = {'x': {'y': 1, 'z': 2}, 'k': 1}\n"
                                   "assert deep_merge(_a, {'x': {'y': 9}, 'n': 0}) == "
                                   "{'x': {'y': 9, 'z': 2}, 'k': 1, 'n': 0}\n"
                                   "assert _a['x']['y'] == 1\n"))
    if kind == "count":
        ent = pick_data_entity(rng, "cat")
        key = pick(rng, ent, "cat").name
        expected: dict = {}
        for row in rows_of(ent):
            expected[row[key]] = expected.get(row[key], 0) + 1
        return Sample(py_ask(rng, f"count_by_{key}", ["items"],
                             f"counts {plural(ent).replace('_', ' ')} per `{key}`"),
                      f"from collections import Counter\n\n\n"
                      f"def count_by_{key}(items: list[dict]) -> Counter:\n"
                      f"    return Counter(item[\"{key}\"] for item in items)\n",
                      PyCheck(given=rows_given(ent),
                              then=f"assert dict(count_by_{key}(rows)) == {expected!r}\n"))
    return Sample(f"{verb} `get_path(d, 'a.b.c')` that reads a nested key by a dotted "
                  f"path and returns None when missing.",
                  "def get_path(data: dict, path: str, default=None):\n"
                  "    for part in path.split(\".\"):\n"
                  "        if not isinstance(data, dict) or part not in data:\n"
                  "            return default\n        data = data[part]\n    return data\n",
                  PyCheck(then="_d = {'a': {'b': {'c': 3}}, 'x': 1}\n"
                               "assert get_path(_d, 'a.b.c') == 3 and get_path(_d, 'x') == 1\n"
                               "assert get_path(_d, 'a.q') is None and get_path(_d, 'x.y') is None\n"))


NUMBER_SPECS = {  # name: (parameters, what it does, code, asserts)
    "mean": (["values"], "returns the arithmetic mean of a list of numbers, or 0.0 for an empty "
             "list", "def mean(values: list[float]) -> float:\n"
             "    return sum(values) / len(values) if values else 0.0\n",
             "assert mean([1, 2, 3, 6]) == 3\nassert mean([]) == 0.0\n"),
    "median": (["values"], "returns the median of a non-empty list of numbers",
               "def median(values: list[float]) -> float:\n    ordered = sorted(values)\n"
               "    mid = len(ordered) // 2\n    if len(ordered) % 2:\n        return ordered[mid]\n"
               "    return (ordered[mid - 1] + ordered[mid]) / 2\n",
               "assert median([3, 1, 2]) == 2\nassert median([4, 1, 3, 2]) == 2.5\n"),
    "moving_average": (["values", "k"], "returns the moving averages over windows of k "
                       "consecutive values", "def moving_average(values: list[float], k: int) -> "
                       "list[float]:\n    return [sum(values[i:i + k]) / k for i in "
                       "range(len(values) - k + 1)]\n",
                       "assert moving_average([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]\n"
                       "assert moving_average([1, 2], 3) == []\n"),
    "normalize": (["values"], "scales a list of numbers linearly to the range 0..1 (all zeros "
                  "when every value is the same)", "def normalize(values: list[float]) -> "
                  "list[float]:\n    low, high = min(values), max(values)\n    if high == low:\n"
                  "        return [0.0 for _ in values]\n"
                  "    return [(v - low) / (high - low) for v in values]\n",
                  "assert normalize([2, 4, 6]) == [0.0, 0.5, 1.0]\nassert normalize([5, 5]) == "
                  "[0.0, 0.0]\n"),
    "clamp": (["x", "low", "high"], "limits x to the interval [low, high]",
              "def clamp(x: float, low: float, high: float) -> float:\n"
              "    return max(low, min(x, high))\n",
              "assert clamp(5, 0, 3) == 3 and clamp(-1, 0, 3) == 0 and clamp(2, 0, 3) == 2\n"),
    "percent_change": (["old", "new"], "returns the change from old to new in percent and raises "
                       "ValueError when old is zero", "def percent_change(old: float, new: float) "
                       "-> float:\n    if old == 0:\n        raise ValueError(\"old must not be "
                       "zero\")\n    return (new - old) / old * 100\n",
                       "assert percent_change(50, 75) == 50.0\nassert percent_change(200, 50) == "
                       "-75.0\ntry:\n    percent_change(0, 1)\nexcept ValueError:\n    pass\n"
                       "else:\n    raise AssertionError('no ValueError')\n"),
    "dedupe": (["items"], "removes duplicates from a list and keeps the first occurrence's order",
               "def dedupe(items: list) -> list:\n    return list(dict.fromkeys(items))\n",
               "assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]\nassert dedupe([]) == []\n"),
    "top_n": (["items", "n"], "returns the n largest numbers of a list, largest first",
              "import heapq\n\n\ndef top_n(items: list[float], n: int) -> list[float]:\n"
              "    return heapq.nlargest(n, items)\n",
              "assert top_n([5, 1, 9, 3], 2) == [9, 5]\nassert top_n([1], 3) == [1]\n"),
    "second_largest": (["nums"], "returns the second largest distinct number of a list, or None "
                       "if there is none", "def second_largest(nums: list[int]) -> int | None:\n"
                       "    distinct = sorted(set(nums), reverse=True)\n"
                       "    return distinct[1] if len(distinct) > 1 else None\n",
                       "assert second_largest([4, 9, 9, 2]) == 4\nassert second_largest([7, 7]) "
                       "is None\n"),
    "rotate": (["items", "k"], "rotates a list k places to the right",
               "def rotate(items: list, k: int) -> list:\n    if not items:\n        return []\n"
               "    k %= len(items)\n    return items[-k:] + items[:-k]\n",
               "assert rotate([1, 2, 3, 4], 1) == [4, 1, 2, 3]\nassert rotate([1, 2, 3], 5) == "
               "[2, 3, 1]\nassert rotate([], 2) == []\n"),
    "most_common": (["items"], "returns the most frequent element of a list (the first seen on "
                    "a tie)", "from collections import Counter\n\n\ndef most_common(items: list):\n"
                    "    return Counter(items).most_common(1)[0][0]\n",
                    "assert most_common(['a', 'b', 'b', 'a', 'b']) == 'b'\n"
                    "assert most_common([2, 1]) == 2\n"),
    "word_frequencies": (["text"], "counts how often each lower-cased word occurs in a text",
                         "import re\nfrom collections import Counter\n\n\n"
                         "def word_frequencies(text: str) -> dict[str, int]:\n"
                         "    return dict(Counter(re.findall(r\"[a-z']+\", text.lower())))\n",
                         "assert word_frequencies('The cat and the hat.') == "
                         "{'the': 2, 'cat': 1, 'and': 1, 'hat': 1}\n"),
}


def py_small_functions(rng: random.Random) -> Sample:
    name = rng.choice(list(NUMBER_SPECS))
    params, does, code, then = NUMBER_SPECS[name]
    return Sample(py_ask(rng, name, params, does), code, PyCheck(then=then))


PYTHON_TASKS: list[Callable[[random.Random], Sample]] = [
    py_filter_sum, py_dataclass, py_group_by, py_string, py_file_io, py_recursion, py_errors,
    py_generators, py_sorting, py_regex, py_pytest, py_asyncio, py_argparse, py_dict_ops,
    py_small_functions, py_small_functions,  # twice: it holds twelve task shapes
]

# -------------------------------------------------------------------------------- sql


def sql_sample(rng: random.Random, ask: str, code: str, tables: list[Table],
               **check: str) -> Sample:
    """A templated SQL example: the request (often with its schema) and its check."""
    return Sample(frame_sql(rng, ask, tables), code, sql_check(*tables, **check))


def threshold(rng: random.Random, f: Field) -> float:
    return rng.choice(f.pool[3])


def sql_select_where(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "num")
    t, num = table(ent), pick(rng, ent, "num")
    thr = threshold(rng, num)
    cols = rng.sample(t.columns, k=rng.randint(2, 4))
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} that lists {', '.join(cols)} of all "
                      f"{t.name} with {num.name} greater than {thr}.",
                      f"SELECT {', '.join(cols)}\nFROM {t.name}\nWHERE {num.name} > {thr};", [t])


def sql_group_by(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "cat", "num")
    t, key, num = table(ent), pick(rng, ent, "cat").name, pick(rng, ent, "num").name
    agg = rng.choice(["SUM", "AVG", "MAX", "MIN", "COUNT"])
    word = {"SUM": "total", "AVG": "average", "MAX": "maximum", "MIN": "minimum",
            "COUNT": "number of"}[agg]
    expr = "COUNT(*)" if agg == "COUNT" else f"{agg}({num})"
    alias = "n" if agg == "COUNT" else f"{word}_{num}"
    what = f"the {word} {t.name}" if agg == "COUNT" else f"the {word} {num}"
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} returning {what} per {key} in the "
                      f"{t.name} table.",
                      f"SELECT {key}, {expr} AS {alias}\nFROM {t.name}\nGROUP BY {key}\n"
                      f"ORDER BY {alias} DESC;", [t])


def relation(rng: random.Random) -> tuple[Table, Table, str, str, str]:
    """A parent and child table, the child's foreign key, and the tables' aliases."""
    parent, child, fk = rng.choice(RELATIONS)
    p, c = table(parent), table(child)
    a, b = p.name[0], c.name[0] if c.name[0] != p.name[0] else c.name[:2]
    return p, c, fk, a, b


def sql_join(rng: random.Random) -> Sample:
    p, c, fk, a, b = relation(rng)
    parent = next(e for e in DATA_ENTITIES if table(e) is p)
    child = next(e for e in DATA_ENTITIES if table(e) is c)
    pcol = pick(rng, parent, "label", "cat").name
    ccol = pick(rng, child, "num", "cat").name
    kind = rng.choice(["INNER JOIN", "LEFT JOIN"])
    keep = f" (keep {p.name} without {c.name})" if kind == "LEFT JOIN" else ""
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} joining {p.name} and {c.name} to show each "
                      f"{parent.replace('_', ' ')}'s {pcol} with the {ccol} of its {c.name}{keep}.",
                      f"SELECT {a}.{pcol}, {b}.{ccol}\nFROM {p.name} AS {a}\n{kind} {c.name} AS {b}\n"
                      f"  ON {b}.{fk} = {a}.id;", [p, c])


def sql_create_table(rng: random.Random) -> Sample:
    t = table(pick_data_entity(rng))
    lines = []
    for f in t.fields:
        if f.role == "id":
            lines.append("    id INTEGER PRIMARY KEY")
        else:
            null = " NOT NULL" if rng.random() < 0.5 else ""
            lines.append(f"    {f.name} {f.sql}{null}")
    after = f"SELECT 1 WHERE (SELECT COUNT(*) FROM pragma_table_info('{t.name}')) = {len(t.fields)}"
    article = "an" if t.name[0] in "aeiou" else "a"
    return Sample(f"{rng.choice(SQL_VERBS)} that creates {article} {t.name} table with columns "
                  f"{', '.join(t.columns)}.",
                  f"CREATE TABLE {t.name} (\n" + ",\n".join(lines) + "\n);",
                  SqlCheck("", after=after))


def new_row(rng: random.Random, ent: str) -> dict:
    """Values of a new row of ``ent`` (not the id)."""
    row = {}
    for f in table(ent).fields[1:]:
        if f.role == "num":
            low, high, decimals, _ = f.pool
            row[f.name] = round(rng.uniform(low, high), decimals) if decimals else rng.randint(low, high)
        elif f.role == "ref":
            row[f.name] = rng.randint(1, 4)
        elif f.role == "date":
            row[f.name] = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        elif f.role == "label":
            row[f.name] = rng.choice(PROJECTS).replace("-", " ").title()
        else:
            row[f.name] = rng.choice(f.pool)
    return row


def sql_insert(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng)
    t = table(ent)
    row = new_row(rng, ent)
    lits = [sql_literal(v) for v in row.values()]
    said = ", ".join(f"{k} {v}" for k, v in zip(row, lits, strict=True))
    ask = rng.choice([f"{rng.choice(SQL_VERBS)} that inserts one new row into {t.name} "
                      f"({said}).",
                      f"{rng.choice(SQL_VERBS)} to add a {ent.replace('_', ' ')} with {said}."])
    return sql_sample(rng, ask, f"INSERT INTO {t.name} ({', '.join(row)})\n"
                      f"VALUES ({', '.join(lits)});", [t])


def sql_update(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "num")
    t, num = table(ent), pick(rng, ent, "num")
    if rng.random() < 0.5 or not fields_with(ent, "cat"):
        pct = rng.choice([5, 10, 15, 20, 50])
        row = rng.randint(1, N_ROWS)
        return sql_sample(rng, f"{rng.choice(SQL_VERBS)} that raises {num.name} by {pct}% for "
                          f"the {ent.replace('_', ' ')} with id {row}.",
                          f"UPDATE {t.name}\nSET {num.name} = {num.name} * {1 + pct / 100:.2f}\n"
                          f"WHERE id = {row};", [t])
    key, thr = pick(rng, ent, "cat").name, threshold(rng, num)
    value = rng.choice(["archived", "inactive", "review"])
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} that sets {key} to '{value}' for all "
                      f"{t.name} with {num.name} below {thr}.",
                      f"UPDATE {t.name}\nSET {key} = '{value}'\nWHERE {num.name} < {thr};", [t])


def recent(t: Table, col: Field) -> str:
    """Setup SQL dating two rows' ``col`` two days back, two 400 days back (any day it runs)."""
    fn = "datetime" if col.sql == "TIMESTAMP" else "date"
    return (f"UPDATE {t.name} SET {col.name} = {fn}('now', '-2 days') WHERE id IN (1, 2);\n"
            f"UPDATE {t.name} SET {col.name} = {fn}('now', '-400 days') WHERE id IN (11, 12);\n")


def sql_delete(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng)
    t = table(ent)
    dates = fields_with(ent, "date")
    verb = rng.choice(SQL_VERBS)
    if not dates:
        num = pick(rng, ent, "num")
        thr = threshold(rng, num)
        return sql_sample(rng, f"{verb} that deletes {t.name} with {num.name} below {thr}.",
                          f"DELETE FROM {t.name}\nWHERE {num.name} < {thr};", [t])
    col, days = dates[0], rng.choice([30, 90, 365])
    fn = "datetime" if col.sql == "TIMESTAMP" else "date"
    where = rng.choice([f"{col.name} < {fn}('now', '-{days} days')",
                        f"julianday('now') - julianday({col.name}) > {days}"])
    return sql_sample(rng, f"{verb} that deletes {t.name} whose {col.name} is older than "
                      f"{days} days.", f"DELETE FROM {t.name}\nWHERE {where};", [t],
                      extra=recent(t, col),
                      after=f"SELECT 1 FROM {t.name} WHERE id = 1")


def sql_top_n(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "num")
    t, num = table(ent), pick(rng, ent, "num").name
    n = rng.choice([3, 5, 10, 20])
    label = pick(rng, ent, "label", "cat", "ref").name
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} for the top {n} {t.name} by {num}.",
                      f"SELECT {label}, {num}\nFROM {t.name}\nORDER BY {num} DESC\nLIMIT {n};", [t])


def sql_window(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "cat", "num")
    t, part, num = table(ent), pick(rng, ent, "cat").name, pick(rng, ent, "num").name
    fn = rng.choice(["RANK()", "ROW_NUMBER()", "DENSE_RANK()"])
    k = rng.choice([1, 2, 3])
    top = f"the {ent.replace('_', ' ')} with the highest" if k == 1 else f"the top {k} {t.name} by"
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} that returns {top} {num} within each "
                      f"{part}, using a window function.",
                      f"SELECT *\nFROM (\n  SELECT t.*, {fn} OVER (PARTITION BY {part} ORDER BY "
                      f"{num} DESC) AS rnk\n  FROM {t.name} AS t\n) ranked\nWHERE rnk <= {k};", [t])


def sql_cte(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "cat", "num")
    t, key, num = table(ent), pick(rng, ent, "cat").name, pick(rng, ent, "num").name
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} with a CTE: compute the average {num} per "
                      f"{key}, then list the {t.name} above their group's average.",
                      f"WITH group_avg AS (\n  SELECT {key}, AVG({num}) AS avg_{num}\n"
                      f"  FROM {t.name}\n  GROUP BY {key}\n)\nSELECT t.*\nFROM {t.name} AS t\n"
                      f"JOIN group_avg AS g ON g.{key} = t.{key}\nWHERE t.{num} > g.avg_{num};", [t])


def sql_having(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "cat")
    t, key = table(ent), pick(rng, ent, "cat", "ref")
    n = 2 if key.role == "ref" else rng.choice([2, 3])  # 3 rows per ref value, 4 per category
    key = key.name
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} listing every {key} that has more than {n} "
                      f"{t.name}.",
                      f"SELECT {key}, COUNT(*) AS n\nFROM {t.name}\nGROUP BY {key}\n"
                      f"HAVING COUNT(*) > {n};", [t])


def sql_index(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng)
    t = table(ent)
    cols = rng.sample(t.columns[1:], k=rng.randint(1, 2))
    labels = [f.name for f in fields_with(ent, "label")]
    unique = bool(set(cols) & set(labels)) and rng.random() < 0.5  # only distinct values
    name = f"idx_{t.name}_{'_'.join(cols)}"
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} that adds a {'unique ' if unique else ''}"
                      f"index on {t.name}({', '.join(cols)}).",
                      f"CREATE {'UNIQUE ' if unique else ''}INDEX {name}\n  ON {t.name} "
                      f"({', '.join(cols)});", [t],
                      after=f"SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = '{name}'")


def sql_anti_join(rng: random.Random) -> Sample:
    p, c, fk, _, _ = relation(rng)
    ask = rng.choice([f"{rng.choice(SQL_VERBS)} finding {p.name} that have no {c.name}.",
                      f"{rng.choice(SQL_VERBS)} for the {p.name} without any {c.name}."])
    if rng.random() < 0.5:
        code = (f"SELECT p.*\nFROM {p.name} AS p\nLEFT JOIN {c.name} AS c ON c.{fk} = p.id\n"
                f"WHERE c.id IS NULL;")
    else:
        code = (f"SELECT p.*\nFROM {p.name} AS p\nWHERE NOT EXISTS (\n"
                f"  SELECT 1 FROM {c.name} AS c WHERE c.{fk} = p.id\n);")
    return sql_sample(rng, ask, code, [p, c])


def sql_date_range(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "date")
    t, col = table(ent), fields_with(ent, "date")[0].name
    m = rng.randint(1, 11)
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} counting {t.name} per day between "
                      f"2026-{m:02d}-01 and 2026-{m + 1:02d}-01.",
                      f"SELECT date({col}) AS day, COUNT(*) AS n\nFROM {t.name}\n"
                      f"WHERE {col} >= '2026-{m:02d}-01' AND {col} < '2026-{m + 1:02d}-01'\n"
                      f"GROUP BY day\nORDER BY day;", [t])


def sql_subquery(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "num")
    t, num = table(ent), pick(rng, ent, "num").name
    op, word = rng.choice([(">", "above"), ("<", "below")])
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} that returns {t.name} with {num} {word} the "
                      f"overall average, using a subquery.",
                      f"SELECT *\nFROM {t.name}\nWHERE {num} {op} (SELECT AVG({num}) FROM {t.name});",
                      [t])


def sql_per_period(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "date")
    t, col = table(ent), fields_with(ent, "date")[0].name
    period, fmt = rng.choice([("month", "%Y-%m"), ("weekday", "%w"), ("quarter", "")])
    ask = f"{rng.choice(SQL_VERBS)} that counts the {t.name} per {period} of 2026 (by {col})."
    expr = (f"(CAST(strftime('%m', {col}) AS INTEGER) + 2) / 3" if period == "quarter"
            else f"strftime('{fmt}', {col})")
    return sql_sample(rng, ask, f"SELECT {expr} AS {period}, COUNT(*) AS n\nFROM {t.name}\n"
                      f"WHERE {col} >= '2026-01-01' AND {col} < '2027-01-01'\n"
                      f"GROUP BY {period}\nORDER BY {period};", [t])


def sql_recent(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "date")
    t, col = table(ent), fields_with(ent, "date")[0]
    days = rng.choice([7, 14, 30])
    fn = "datetime" if col.sql == "TIMESTAMP" else "date"
    ask = rng.choice([f"{rng.choice(SQL_VERBS)} for the {t.name} of the last {days} days "
                      f"(by {col.name}).",
                      f"{rng.choice(SQL_VERBS)} that shows {t.name} with {col.name} in the past "
                      f"{days} days, newest first."])
    return sql_sample(rng, ask, f"SELECT *\nFROM {t.name}\nWHERE {col.name} >= "
                      f"{fn}('now', '-{days} days')\nORDER BY {col.name} DESC;", [t],
                      extra=recent(t, col))


def sql_upsert(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "num")
    t, num = table(ent), pick(rng, ent, "num")
    row_id = rng.randint(1, N_ROWS + 3)
    value = new_row(rng, ent)[num.name]
    ask = (f"{rng.choice(SQL_VERBS)} that sets {num.name} to {value} for the "
           f"{ent.replace('_', ' ')} with id {row_id}, inserting the row if it does not exist yet "
           f"(upsert).")
    return sql_sample(rng, ask, f"INSERT INTO {t.name} (id, {num.name})\nVALUES ({row_id}, {value})\n"
                      f"ON CONFLICT (id) DO UPDATE SET {num.name} = excluded.{num.name};", [t],
                      after=f"SELECT 1 FROM {t.name} WHERE id = {row_id} AND {num.name} = {value}")


def sql_case(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "num")
    t, num = table(ent), pick(rng, ent, "num")
    low, high = sorted(rng.sample(num.pool[3], 2))
    label = pick(rng, ent, "label", "cat", "id").name
    ask = (f"{rng.choice(SQL_VERBS)} that labels each of the {t.name} as 'low' ({num.name} under "
           f"{low}), 'medium' (under {high}) or 'high', showing its {label}.")
    return sql_sample(rng, ask, f"SELECT {label}, {num.name},\n       CASE\n"
                      f"         WHEN {num.name} < {low} THEN 'low'\n"
                      f"         WHEN {num.name} < {high} THEN 'medium'\n"
                      f"         ELSE 'high'\n       END AS {num.name}_band\nFROM {t.name};", [t])


def sql_group_concat(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "cat", "label")
    t, key, label = table(ent), pick(rng, ent, "cat").name, pick(rng, ent, "label").name
    sep = rng.choice([", ", "; ", " | "])
    ask = (f"{rng.choice(SQL_VERBS)} that lists, for each {key}, all {label} values of the "
           f"{t.name} as one string separated by '{sep}'.")
    return sql_sample(rng, ask, f"SELECT {key}, GROUP_CONCAT({label}, '{sep}') AS {label}s\n"
                      f"FROM {t.name}\nGROUP BY {key};", [t])


def sql_distinct(rng: random.Random) -> Sample:
    ent = pick_data_entity(rng, "cat")
    t, key = table(ent), pick(rng, ent, "cat").name
    if rng.random() < 0.5:
        return sql_sample(rng, f"{rng.choice(SQL_VERBS)} that counts the distinct {key} values "
                          f"in {t.name}.", f"SELECT COUNT(DISTINCT {key}) AS n\nFROM {t.name};", [t])
    return sql_sample(rng, f"{rng.choice(SQL_VERBS)} listing each {key} of the {t.name} once, "
                      f"alphabetically.", f"SELECT DISTINCT {key}\nFROM {t.name}\nORDER BY {key};",
                      [t])


SQL_TASKS: list[Callable[[random.Random], Sample]] = [
    sql_select_where, sql_group_by, sql_join, sql_create_table, sql_insert, sql_update,
    sql_delete, sql_top_n, sql_window, sql_cte, sql_having, sql_index, sql_anti_join,
    sql_date_range, sql_subquery, sql_per_period, sql_recent, sql_upsert, sql_case,
    sql_group_concat, sql_distinct,
]


# ------------------------------------------------------------------------------- docs


def doc_docstring(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    num = numeric_field(rng, fields)
    fn = rng.choice(["summarize", "normalize", "validate", "rank"]) + f"_{plural(ent)}"
    style = rng.choice(["numpy", "google"])
    prompt = (f"{rng.choice(DOC_VERBS)} a {style}-style docstring for `{fn}(items, threshold)`, "
              f"which works on {plural(ent)} and their {num}.")
    if style == "numpy":
        doc = (f'"""{fn.split("_")[0].capitalize()} {plural(ent)} by their {num}.\n\n'
               f"Parameters\n----------\nitems : list of dict\n"
               f"    The {plural(ent)} to process; each needs a ``{num}`` key.\n"
               f"threshold : float\n    Entries with {num} below this value are ignored.\n\n"
               f"Returns\n-------\nlist of dict\n    The processed {plural(ent)}, in input order.\n"
               f'"""')
    else:
        doc = (f'"""{fn.split("_")[0].capitalize()} {plural(ent)} by their {num}.\n\n'
               f"Args:\n    items: The {plural(ent)} to process; each needs a `{num}` key.\n"
               f"    threshold: Entries with {num} below this value are ignored.\n\n"
               f"Returns:\n    The processed {plural(ent)}, in input order.\n"
               f'"""')
    return prompt, doc


def doc_install(rng: random.Random) -> tuple[str, str]:
    proj = rng.choice(PROJECTS)
    py = rng.choice(["3.10", "3.11", "3.12"])
    mgr = rng.choice(["pip", "conda", "uv"])
    cmd = {"pip": f"pip install {proj}", "conda": f"conda install -c conda-forge {proj}",
           "uv": f"uv pip install {proj}"}[mgr]
    return (f"{rng.choice(DOC_VERBS)} the Installation section of the README for {proj}, "
            f"installed with {mgr}.",
            f"## Installation\n\n{proj} needs Python {py} or newer. Install it with {mgr}:\n\n"
            f"```bash\n{cmd}\n```\n\nCheck that it works:\n\n```bash\n{proj} --version\n```\n")


def doc_changelog(rng: random.Random) -> tuple[str, str]:
    proj = rng.choice(PROJECTS)
    major, minor, patch = rng.randint(0, 3), rng.randint(0, 12), rng.randint(0, 9)
    added = rng.choice(["a `--json` output flag", "streaming reads for large files",
                        "retry with backoff on network errors", "a plugin API",
                        "Windows support"])
    fixed = rng.choice(["a crash on empty input", "wrong totals when rows repeat",
                        "a memory leak in the cache", "timezone handling of dates",
                        "an off-by-one error in pagination"])
    return (f"{rng.choice(DOC_VERBS)} a changelog entry for {proj} {major}.{minor}.{patch} that adds "
            f"{added} and fixes {fixed}.",
            f"## [{major}.{minor}.{patch}] - 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}\n\n"
            f"### Added\n- {added[0].upper() + added[1:]}.\n\n### Fixed\n- {fixed[0].upper() + fixed[1:]}.\n")


def doc_endpoint(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    method = rng.choice(["GET", "POST", "DELETE"])
    path = f"/api/v{rng.randint(1, 3)}/{plural(ent)}" + ("/{id}" if method != "POST" else "")
    verb = {"GET": "Fetch one", "POST": "Create a", "DELETE": "Delete one"}[method]
    status = {"GET": "200 OK", "POST": "201 Created", "DELETE": "204 No Content"}[method]
    field_list = "\n".join(f"| `{f}` | {t} |" for f, _, t in fields)
    return (f"{rng.choice(DOC_VERBS)} API reference documentation for `{method} {path}`.",
            f"### `{method} {path}`\n\n{verb} {ent.replace('_', ' ')}.\n\n"
            f"**Response:** `{status}`\n\n| field | type |\n|---|---|\n{field_list}\n\n"
            f"Errors: `404 Not Found` when the {ent.replace('_', ' ')} does not exist.\n")


def doc_config_table(rng: random.Random) -> tuple[str, str]:
    proj = rng.choice(PROJECTS)
    opts = rng.sample([("timeout", "30", "Seconds to wait before giving up."),
                       ("retries", "3", "How many times a failed request is retried."),
                       ("log_level", "\"info\"", "Verbosity of the log output."),
                       ("cache_dir", "\"~/.cache\"", "Where downloaded files are kept."),
                       ("workers", "4", "Number of parallel worker processes."),
                       ("batch_size", "64", "Items processed per batch.")], k=rng.randint(2, 4))
    rows = "\n".join(f"| `{k}` | `{d}` | {h} |" for k, d, h in opts)
    return (f"{rng.choice(DOC_VERBS)} a configuration reference table for {proj} covering "
            + ", ".join(k for k, _, _ in opts) + ".",
            f"## Configuration\n\nSet these keys in `{proj}.toml`:\n\n| key | default | effect |\n"
            f"|---|---|---|\n{rows}\n")


def doc_faq(rng: random.Random) -> tuple[str, str]:
    proj = rng.choice(PROJECTS)
    problem, fix = rng.choice([
        ("`ModuleNotFoundError` after install", "Make sure the virtual environment where you "
         "installed it is active: run `which python` and reinstall if it points elsewhere."),
        ("the command hangs on start", "Another instance holds the lock file. Stop it, or "
         "delete the stale lock in the cache directory."),
        ("`Permission denied` when writing output", "Choose an output directory you own with "
         "`--output`, or fix the directory's permissions."),
        ("results differ between runs", "Set `--seed` to a fixed value; without it every run "
         "samples differently."),
        ("it runs out of memory on large inputs", "Lower `batch_size` in the configuration or "
         "use the streaming reader."),
    ])
    return (f"{rng.choice(DOC_VERBS)} a troubleshooting FAQ entry for {proj}: {problem}.",
            f"### Why do I get {problem}?\n\n{fix}\n\nIf this does not help, open an issue with "
            f"the output of `{proj} --version` and the full error message.\n")


def doc_migration(rng: random.Random) -> tuple[str, str]:
    proj = rng.choice(PROJECTS)
    old, new = rng.choice([("load()", "read()"), ("Client(url)", "Client.connect(url)"),
                           ("verbose=True", "log_level=\"debug\""),
                           ("run_sync()", "run(blocking=True)")])
    v = rng.randint(2, 5)
    return (f"{rng.choice(DOC_VERBS)} a migration note for {proj} {v}.0 explaining that `{old}` "
            f"was replaced by `{new}`.",
            f"## Migrating to {proj} {v}.0\n\n`{old}` was removed in {v}.0. Use `{new}` instead:\n\n"
            f"```python\n# before\n{proj.replace('-', '_')}.{old}\n# after\n"
            f"{proj.replace('-', '_')}.{new}\n```\n\nThe old form raised a deprecation warning "
            f"since {v - 1}.0.\n")


def doc_commit(rng: random.Random) -> tuple[str, str]:
    area = rng.choice(["parser", "cache", "cli", "docs", "auth", "exporter", "scheduler"])
    change = rng.choice(["handle empty files", "add a timeout option", "fix a race on shutdown",
                         "speed up lookups with an index", "log the failing key"])
    return (f"{rng.choice(DOC_VERBS)} a git commit message for a change in the {area} that "
            f"does this: {change}.",
            f"{area}: {change}\n\nBefore this change the {area} {rng.choice(['failed', 'misbehaved', 'was slow'])} "
            f"in that case. This commit makes the behaviour explicit and adds a test for it.\n")


def doc_tutorial(rng: random.Random) -> tuple[str, str]:
    proj = rng.choice(PROJECTS)
    step = rng.randint(1, 6)
    goal = rng.choice(["load your first dataset", "configure logging", "write a plugin",
                       "deploy to a server", "run the test suite"])
    return (f"{rng.choice(DOC_VERBS)} step {step} of the {proj} tutorial: how to {goal}.",
            f"## Step {step}: {goal[0].upper() + goal[1:]}\n\nIn this step you {goal} with {proj}. "
            f"You need the setup from step {max(step - 1, 1)}.\n\n1. Open a terminal in your project.\n"
            f"2. Run `{proj} {goal.split()[0]}`.\n3. Check the output for errors.\n\n"
            f"Next, continue with step {step + 1}.\n")


def doc_explain(rng: random.Random) -> tuple[str, str]:
    concept, text = rng.choice([
        ("idempotency", "An operation is idempotent when running it twice has the same effect as "
         "running it once. Retries are only safe for idempotent operations."),
        ("backpressure", "Backpressure lets a slow consumer tell a fast producer to slow down, "
         "so queues do not grow without bound."),
        ("semantic versioning", "A version MAJOR.MINOR.PATCH bumps MAJOR for breaking changes, "
         "MINOR for new features and PATCH for fixes."),
        ("connection pooling", "A pool keeps open connections for reuse, which saves the cost of "
         "a new handshake on every request."),
        ("rate limiting", "A rate limit caps how many requests a client may send per time window; "
         "extra requests get `429 Too Many Requests`."),
    ])
    proj = rng.choice(PROJECTS)
    return (f"{rng.choice(DOC_VERBS)} a short explanation of {concept} for the {proj} docs.",
            f"## {concept.capitalize()}\n\n{text}\n\nIn {proj}, see the configuration reference "
            f"for the related options.\n")


DOC_TASKS: list[Callable[[random.Random], tuple[str, str]]] = [
    doc_docstring, doc_install, doc_changelog, doc_endpoint, doc_config_table, doc_faq,
    doc_migration, doc_commit, doc_tutorial, doc_explain,
]

DOMAINS = {"python": PYTHON_TASKS, "sql": SQL_TASKS, "docs": DOC_TASKS}


# ---------------------------------------------------------------- shell (a late domain)
# Not in the tokenizer's corpus (data/late/ is outside data/*.jsonl): the specialty a node
# brings to a running federation (run.allow-new-specialties), as a new department would.
EXTS = ["log", "csv", "json", "py", "tmp", "bak", "txt", "gz", "md", "yaml"]
DIRS = ["/var/log", "~/projects", "/tmp", "./build", "/srv/data", "~/Downloads", "/etc/nginx",
        "./src", "/opt/app", "~/backups"]
PROCS = ["nginx", "postgres", "redis-server", "gunicorn", "node", "java", "celery", "sshd"]
SHELL_VERBS = ["Give me a shell command to", "Write a bash one-liner to", "How do I, in bash,",
               "Write a shell command that will", "In the terminal,", "Bash:"]


def sh_find(rng: random.Random) -> tuple[str, str]:
    ext, d, days = rng.choice(EXTS), rng.choice(DIRS), rng.randint(1, 60)
    return (f"{rng.choice(SHELL_VERBS)} find every .{ext} file under {d} modified in the last "
            f"{days} days.", f"find {d} -type f -name '*.{ext}' -mtime -{days}\n")


def sh_grep(rng: random.Random) -> tuple[str, str]:
    word, ext, d = rng.choice(["TODO", "ERROR", "timeout", "deprecated", "password"]), \
        rng.choice(EXTS), rng.choice(DIRS)
    return (f"{rng.choice(SHELL_VERBS)} grep recursively for {word} in the .{ext} files of "
            f"{d}, with line numbers.", f"grep -rn --include='*.{ext}' '{word}' {d}\n")


def sh_count(rng: random.Random) -> tuple[str, str]:
    ext, d = rng.choice(EXTS), rng.choice(DIRS)
    return (f"{rng.choice(SHELL_VERBS)} count the lines of all .{ext} files in {d}.",
            f"find {d} -name '*.{ext}' -print0 | xargs -0 wc -l | tail -n 1\n")


def sh_tar(rng: random.Random) -> tuple[str, str]:
    d, name = rng.choice(DIRS), rng.choice(PROJECTS)
    return (f"{rng.choice(SHELL_VERBS)} make a gzipped tarball {name}.tar.gz of {d}.",
            f"tar -czf {name}.tar.gz -C {d} .\n")


def sh_du(rng: random.Random) -> tuple[str, str]:
    d, n = rng.choice(DIRS), rng.randint(3, 20)
    return (f"{rng.choice(SHELL_VERBS)} list the {n} biggest directories in {d} by disk usage.",
            f"du -sh {d}/* 2>/dev/null | sort -rh | head -n {n}\n")


def sh_kill(rng: random.Random) -> tuple[str, str]:
    proc, sig = rng.choice(PROCS), rng.choice(["TERM", "HUP", "KILL"])
    return (f"{rng.choice(SHELL_VERBS)} send SIG{sig} to every {proc} process.",
            f"pkill -{sig} -x {proc}\n")


def sh_rename(rng: random.Random) -> tuple[str, str]:
    old, new, d = rng.sample(EXTS, 2) + [rng.choice(DIRS)]
    return (f"{rng.choice(SHELL_VERBS)} rename every .{old} file in {d} to .{new}.",
            f"for f in {d}/*.{old}; do mv -- \"$f\" \"${{f%.{old}}}.{new}\"; done\n")


def sh_cron(rng: random.Random) -> tuple[str, str]:
    hour, minute, script = rng.randint(0, 23), rng.choice([0, 15, 30, 45]), \
        rng.choice(["backup.sh", "rotate-logs.sh", "sync.sh", "cleanup.sh"])
    return (f"{rng.choice(SHELL_VERBS)} add a crontab line that runs ~/bin/{script} every day at "
            f"{hour:02d}:{minute:02d}.",
            f"(crontab -l; echo '{minute} {hour} * * * ~/bin/{script}') | crontab -\n")


def sh_chmod(rng: random.Random) -> tuple[str, str]:
    ext, d, mode = rng.choice(EXTS), rng.choice(DIRS), rng.choice(["644", "600", "755", "640"])
    return (f"{rng.choice(SHELL_VERBS)} set permissions {mode} on all .{ext} files below {d}.",
            f"find {d} -type f -name '*.{ext}' -exec chmod {mode} {{}} +\n")


def sh_delete(rng: random.Random) -> tuple[str, str]:
    ext, d, days = rng.choice(EXTS), rng.choice(DIRS), rng.randint(7, 90)
    return (f"{rng.choice(SHELL_VERBS)} delete .{ext} files in {d} older than {days} days.",
            f"find {d} -type f -name '*.{ext}' -mtime +{days} -delete\n")


SHELL_TASKS: list[Callable[[random.Random], tuple[str, str]]] = [
    sh_find, sh_grep, sh_count, sh_tar, sh_du, sh_kill, sh_rename, sh_cron, sh_chmod, sh_delete,
]
LATE_DOMAINS = {"shell": SHELL_TASKS}
N_LATE = 500



def generate_samples(domain: str, n: int = N_PER_DOMAIN, seed: int = SEED) -> list[Sample]:
    """Return ``n`` unique examples for ``domain`` with their checks, deterministic for a seed."""
    rng = random.Random(f"{seed}-{domain}")
    tasks = {**DOMAINS, **LATE_DOMAINS}[domain]
    seen: set[str] = set()
    out: list[Sample] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > n * 200:
            raise RuntimeError(f"{domain}: only {len(out)} unique examples after {attempts} draws")
        if domain in BANKS and rng.random() < EVERYDAY_SHARE:
            sample = Sample(*everyday(domain, rng), origin="everyday")
        else:
            drawn = rng.choice(tasks)(rng)
            sample = drawn if isinstance(drawn, Sample) else Sample(*drawn)  # docs, shell
        if sample.prompt in seen:
            continue
        seen.add(sample.prompt)
        out.append(sample)
    return out


def generate(domain: str, n: int = N_PER_DOMAIN, seed: int = SEED) -> list[dict[str, str]]:
    """Return ``n`` unique examples for ``domain`` as JSONL rows, deterministic for a seed."""
    return [{"prompt": s.prompt, "reference_code": s.code} for s in generate_samples(domain, n, seed)]


def bank_samples() -> list[Sample]:
    """Every everyday Python and SQL bank entry, drawn into the data or not."""
    return [Sample(request, answer, check, origin="bank")
            for domain in ("python", "sql") for request, answer, check in BANKS[domain]]


def schema_share(samples: list[Sample]) -> float:
    """Share of templated SQL prompts that name every table (and column) their answer uses."""
    sql = [s for s in samples if s.origin == "template" and isinstance(s.check, SqlCheck)]
    return sum(states_schema(s.prompt, s.check.setup) for s in sql) / max(len(sql), 1)


def signature_share(samples: list[Sample]) -> float:
    """Share of templated Python prompts that name a function of the answer with its arguments."""
    py = [s for s in samples if s.origin == "template" and isinstance(s.check, PyCheck)]
    return sum(names_signature(s.prompt, s.code) for s in py) / max(len(py), 1)


def run_verify() -> int:
    """Run every check of the Python and SQL data and of the banks; 1 if any fails."""
    start = time.perf_counter()
    python, sql = generate_samples("python"), generate_samples("sql")
    samples = python + sql + bank_samples()
    failures = verify(samples)
    checks = {(s.code, s.check) for s in samples if isinstance(s.check, PyCheck)}
    compiled = sum(bool(c.compile_only) for _, c in checks)
    missing = sorted({m for _, c in checks for m in c.needs if not c.compile_only
                      and importlib.util.find_spec(m) is None})
    print(f"python: {len(python)} examples, {signature_share(python):.0%} of the templated "
          f"prompts name the signature (target {SIGNATURE_TARGET:.0%}); of {len(checks)} "
          f"distinct checks {compiled} only compile (network or slow)"
          + (f", and those needing {', '.join(missing)} (not installed)" if missing else ""))
    print(f"sql: {len(sql)} examples, {schema_share(sql):.0%} of the templated prompts state "
          f"the schema (target {SCHEMA_TARGET:.0%})")
    print(f"verified {len(samples)} examples and bank entries in "
          f"{time.perf_counter() - start:.1f} s: {len(failures)} failing")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare, with ``--verify`` execute) the data files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    parser.add_argument("--verify", action="store_true",
                        help="run every SQL and Python reference against its checks")
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args(argv)
    if args.verify:
        return run_verify()
    status = 0
    targets = [(d, args.out / f"{d}.jsonl", N_PER_DOMAIN) for d in DOMAINS]
    targets += [(d, args.out / "late" / f"{d}.jsonl", N_LATE) for d in LATE_DOMAINS]
    for domain, path, n in targets:
        text = render(generate(domain, n))
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path}: differs from the generator output", file=sys.stderr)
                status = 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({text.count(chr(10))} examples)")
    return status


def render(rows: list[dict[str, str]]) -> str:
    """Serialise rows as JSONL text."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


if __name__ == "__main__":
    sys.exit(main())
