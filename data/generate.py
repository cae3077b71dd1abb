"""Generate the sample per-specialty datasets in ``data/``.

The files are the embedded training data of the default run: three clearly
distinct domains (Python code, SQL, technical documentation) in the original
FedMoE format, one JSON object per line with ``prompt`` and
``reference_code``.  Everything is drawn from a seeded ``random.Random`` so the
committed files are reproducible byte for byte::

    python data/generate.py            # rewrites data/{python,sql,docs}.jsonl
    python data/generate.py --check    # exits 1 if the committed files differ

Variety matters more than volume: each domain mixes many task shapes, entity
names, schemas and phrasings, so an expert has to learn the domain rather than
one template.  Half of each main domain's examples are everyday requests from
``everyday.py`` (how people actually ask: "how do i ...", error messages,
library names, concept questions), half are the templated specifications below.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from everyday import BANKS, everyday  # noqa: E402  (a sibling file, also run as a script)

HERE = Path(__file__).resolve().parent
SEED = 20261123
N_PER_DOMAIN = 1600
EVERYDAY_SHARE = 0.5  # of the main domains' examples: everyday requests (everyday.py)

# Entities with their fields: (name, [(field, sql type, python type)]).
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

NUMERIC_PY = {"int", "float"}
VERBS = ["Write", "Implement", "Create", "Give me", "Please write", "Can you write", "Code"]
SQL_VERBS = ["Write a SQL query", "Write an SQL statement", "Give me a query",
             "Compose a SQL query", "SQL:", "Write a PostgreSQL query"]
DOC_VERBS = ["Write", "Draft", "Document", "Produce", "Please write", "Compose"]
PROJECTS = ["tidyframe", "quickcache", "loglens", "parcelpost", "skyline-db", "flowkit",
            "ledgerly", "pixelpipe", "ingestor", "metricsmith", "orbit-cli", "shelfscan"]
COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN", "KE", "CA", "ES", "NL"]
STATUSES = ["pending", "shipped", "cancelled", "delivered", "refunded"]


def plural(name: str) -> str:
    """Table name for an entity (``order`` -> ``orders``)."""
    return name + ("es" if name.endswith("s") else "s")


def camel(name: str) -> str:
    """Class name for an entity (``sensor_reading`` -> ``SensorReading``)."""
    return "".join(part.capitalize() for part in name.split("_"))


def pick_entity(rng: random.Random) -> tuple[str, list[tuple[str, str, str]]]:
    """Return a random entity and its fields."""
    return rng.choice(ENTITIES)


def numeric_field(rng: random.Random, fields: list[tuple[str, str, str]]) -> str:
    """A numeric field other than the id."""
    return rng.choice([f for f, _, t in fields[1:] if t in NUMERIC_PY] or ["id"])


def text_field(rng: random.Random, fields: list[tuple[str, str, str]]) -> str:
    """A text field (falls back to the id)."""
    return rng.choice([f for f, s, t in fields if t == "str" and s == "TEXT"] or ["id"])


# ----------------------------------------------------------------------------- python


def py_filter_sum(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    num = numeric_field(rng, fields)
    thr = rng.choice([0, 10, 18, 50, 100, 250])
    fn = rng.choice(["total_", "sum_", "aggregate_"]) + num
    prompt = (f"{rng.choice(VERBS)} a Python function `{fn}` that takes a list of {ent} "
              f"dicts and returns the sum of `{num}` for entries where `{num}` is above {thr}.")
    code = (f"def {fn}({plural(ent)}: list[dict]) -> float:\n"
            f"    \"\"\"Sum `{num}` over {plural(ent)} whose {num} exceeds {thr}.\"\"\"\n"
            f"    return sum(item[\"{num}\"] for item in {plural(ent)} if item[\"{num}\"] > {thr})\n")
    return prompt, code


def py_dataclass(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    frozen = rng.random() < 0.5
    prompt = (f"{rng.choice(VERBS)} a Python dataclass for a {ent.replace('_', ' ')} with fields "
              + ", ".join(f for f, _, _ in fields) + (" (immutable)" if frozen else "") + ".")
    deco = "@dataclass(frozen=True)" if frozen else "@dataclass"
    body = "\n".join(f"    {f}: {t}" for f, _, t in fields)
    code = (f"from dataclasses import dataclass\n\n\n{deco}\nclass {camel(ent)}:\n"
            f"    \"\"\"One {ent.replace('_', ' ')} record.\"\"\"\n\n{body}\n")
    return prompt, code


def py_group_by(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    key = text_field(rng, fields)
    fn = f"group_{plural(ent)}_by_{key}"
    use_default = rng.random() < 0.5
    prompt = (f"{rng.choice(VERBS)} `{fn}`: group a list of {ent} dictionaries by their "
              f"`{key}` value and return a dict mapping each {key} to its list of {plural(ent)}.")
    if use_default:
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
    return prompt, code


def py_string(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["reverse_words", "count_vowels", "slugify", "is_palindrome",
                       "capitalize_words", "strip_digits"])
    arg = rng.choice(["text", "s", "value", "sentence", "line"])
    specs = {
        "reverse_words": ("reverses the order of words in a string",
                          f"    return \" \".join(reversed({arg}.split()))\n", "str"),
        "count_vowels": ("counts the vowels in a string, case-insensitively",
                         f"    return sum(1 for ch in {arg}.lower() if ch in \"aeiou\")\n", "int"),
        "slugify": ("turns a title into a URL slug (lowercase, hyphen-separated, "
                    "only letters and digits)",
                    f"    words = re.findall(r\"[a-z0-9]+\", {arg}.lower())\n"
                    f"    return \"-\".join(words)\n", "str"),
        "is_palindrome": ("checks whether a string is a palindrome, ignoring case and spaces",
                          f"    cleaned = \"\".join(ch.lower() for ch in {arg} if ch.isalnum())\n"
                          f"    return cleaned == cleaned[::-1]\n", "bool"),
        "capitalize_words": ("capitalizes the first letter of every word",
                             f"    return \" \".join(w[:1].upper() + w[1:] for w in {arg}.split())\n",
                             "str"),
        "strip_digits": ("removes every digit from a string",
                         f"    return \"\".join(ch for ch in {arg} if not ch.isdigit())\n", "str"),
    }
    desc, body, ret = specs[kind]
    prompt = f"{rng.choice(VERBS)} a Python function `{kind}({arg})` that {desc}."
    head = "import re\n\n\n" if kind == "slugify" else ""
    code = f"{head}def {kind}({arg}: str) -> {ret}:\n{body}"
    return prompt, code


def py_file_io(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    fmt = rng.choice(["csv", "json", "jsonl"])
    fn = f"load_{plural(ent)}"
    prompt = (f"{rng.choice(VERBS)} a function `{fn}(path)` that reads {plural(ent)} from a "
              f"{fmt.upper()} file and returns them as a list of dicts.")
    if fmt == "csv":
        code = (f"import csv\nfrom pathlib import Path\n\n\n"
                f"def {fn}(path: str | Path) -> list[dict]:\n"
                f"    with open(path, newline=\"\", encoding=\"utf-8\") as fh:\n"
                f"        return list(csv.DictReader(fh))\n")
    elif fmt == "json":
        code = (f"import json\nfrom pathlib import Path\n\n\n"
                f"def {fn}(path: str | Path) -> list[dict]:\n"
                f"    return json.loads(Path(path).read_text(encoding=\"utf-8\"))\n")
    else:
        code = (f"import json\nfrom pathlib import Path\n\n\n"
                f"def {fn}(path: str | Path) -> list[dict]:\n"
                f"    with open(path, encoding=\"utf-8\") as fh:\n"
                f"        return [json.loads(line) for line in fh if line.strip()]\n")
    return prompt, code


def py_recursion(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["factorial", "fibonacci", "flatten", "depth", "power_set"])
    if kind == "factorial":
        n = rng.choice(["n", "k", "number"])
        return (f"{rng.choice(VERBS)} a recursive Python factorial function.",
                f"def factorial({n}: int) -> int:\n    if {n} < 0:\n"
                f"        raise ValueError(\"{n} must be non-negative\")\n"
                f"    return 1 if {n} <= 1 else {n} * factorial({n} - 1)\n")
    if kind == "fibonacci":
        memo = rng.random() < 0.5
        if memo:
            return (f"{rng.choice(VERBS)} a memoized fibonacci function in Python.",
                    "from functools import lru_cache\n\n\n@lru_cache(maxsize=None)\n"
                    "def fibonacci(n: int) -> int:\n"
                    "    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n")
        return (f"{rng.choice(VERBS)} an iterative fibonacci function in Python.",
                "def fibonacci(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n"
                "        a, b = b, a + b\n    return a\n")
    if kind == "flatten":
        return (f"{rng.choice(VERBS)} a Python function that flattens arbitrarily nested lists.",
                "def flatten(items: list) -> list:\n    out = []\n    for item in items:\n"
                "        if isinstance(item, list):\n            out.extend(flatten(item))\n"
                "        else:\n            out.append(item)\n    return out\n")
    if kind == "depth":
        return (f"{rng.choice(VERBS)} a function returning the maximum nesting depth of a dict.",
                "def max_depth(obj: object) -> int:\n    if not isinstance(obj, dict) or not obj:\n"
                "        return 0\n    return 1 + max(max_depth(v) for v in obj.values())\n")
    return (f"{rng.choice(VERBS)} a Python function that returns the power set of a list.",
            "def power_set(items: list) -> list[list]:\n    if not items:\n        return [[]]\n"
            "    rest = power_set(items[1:])\n    return rest + [[items[0]] + r for r in rest]\n")


def py_errors(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["safe_divide", "parse_int", "read_config", "retry"])
    if kind == "safe_divide":
        d = rng.choice(["0.0", "None", "float('nan')"])
        return (f"{rng.choice(VERBS)} `safe_divide(a, b)` that returns {d} instead of raising "
                f"on division by zero.",
                f"def safe_divide(a: float, b: float) -> float | None:\n    try:\n"
                f"        return a / b\n    except ZeroDivisionError:\n        return {d}\n")
    if kind == "parse_int":
        default = rng.choice([0, -1, "None"])
        return (f"{rng.choice(VERBS)} `parse_int(text, default={default})` that converts a "
                f"string to int and falls back to the default on bad input.",
                f"def parse_int(text: str, default: int | None = {default}) -> int | None:\n"
                f"    try:\n        return int(text.strip())\n"
                f"    except (ValueError, AttributeError):\n        return default\n")
    if kind == "read_config":
        proj = rng.choice(PROJECTS)
        return (f"{rng.choice(VERBS)} a function that loads `{proj}.toml` and raises a clear "
                f"error naming the file when it is missing.",
                f"import tomllib\nfrom pathlib import Path\n\n\n"
                f"def load_config(path: Path = Path(\"{proj}.toml\")) -> dict:\n"
                f"    if not path.exists():\n"
                f"        raise FileNotFoundError(f\"config file not found: {{path}}\")\n"
                f"    with path.open(\"rb\") as fh:\n        return tomllib.load(fh)\n")
    tries = rng.choice([3, 5, 7])
    return (f"{rng.choice(VERBS)} a retry decorator that retries a function up to {tries} times "
            f"with exponential backoff.",
            f"import functools\nimport time\n\n\ndef retry(times: int = {tries}, base: float = 0.1):\n"
            f"    def decorate(fn):\n        @functools.wraps(fn)\n"
            f"        def wrapper(*args, **kwargs):\n            for attempt in range(times):\n"
            f"                try:\n                    return fn(*args, **kwargs)\n"
            f"                except Exception:\n                    if attempt == times - 1:\n"
            f"                        raise\n                    time.sleep(base * 2 ** attempt)\n"
            f"        return wrapper\n    return decorate\n")


def py_generators(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["chunked", "window", "read_lines", "take"])
    size = rng.choice([2, 3, 4, 8, 16, 100])
    if kind == "chunked":
        return (f"{rng.choice(VERBS)} a generator that yields chunks of {size} items from an "
                f"iterable.",
                f"from collections.abc import Iterable, Iterator\nfrom itertools import islice\n\n\n"
                f"def chunked(items: Iterable, size: int = {size}) -> Iterator[list]:\n"
                f"    it = iter(items)\n    while chunk := list(islice(it, size)):\n"
                f"        yield chunk\n")
    if kind == "window":
        return (f"{rng.choice(VERBS)} a sliding window generator of width {size} over a list.",
                f"def sliding_window(items: list, width: int = {size}):\n"
                f"    for start in range(len(items) - width + 1):\n"
                f"        yield items[start:start + width]\n")
    if kind == "read_lines":
        return (f"{rng.choice(VERBS)} a generator that lazily yields non-empty, stripped lines "
                f"of a large text file.",
                "def iter_lines(path: str):\n    with open(path, encoding=\"utf-8\") as fh:\n"
                "        for line in fh:\n            if line.strip():\n"
                "                yield line.strip()\n")
    return (f"{rng.choice(VERBS)} `take(n, iterable)` that returns the first n items as a list.",
            "from itertools import islice\n\n\ndef take(n: int, iterable) -> list:\n"
            "    return list(islice(iterable, n))\n")


def py_sorting(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    key = rng.choice([f for f, _, _ in fields[1:]])
    desc = rng.random() < 0.5
    top = rng.choice([None, 3, 5, 10])
    fn = f"sort_{plural(ent)}_by_{key}"
    extra = f" and return only the first {top}" if top else ""
    prompt = (f"{rng.choice(VERBS)} `{fn}` to sort {plural(ent)} by `{key}` "
              f"{'descending' if desc else 'ascending'}{extra}.")
    sl = f"[:{top}]" if top else ""
    code = (f"def {fn}(items: list[dict]) -> list[dict]:\n"
            f"    return sorted(items, key=lambda item: item[\"{key}\"]"
            f"{', reverse=True' if desc else ''}){sl}\n")
    return prompt, code


def py_regex(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["emails", "dates", "hashtags", "ipv4", "numbers"])
    pats = {"emails": r"[\w.+-]+@[\w-]+\.[\w.]+", "dates": r"\d{4}-\d{2}-\d{2}",
            "hashtags": r"#\w+", "ipv4": r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
            "numbers": r"-?\d+(?:\.\d+)?"}
    return (f"{rng.choice(VERBS)} a Python function that extracts all {kind} from a text with "
            f"a regular expression.",
            f"import re\n\n_PATTERN = re.compile(r\"{pats[kind]}\")\n\n\n"
            f"def extract_{kind}(text: str) -> list[str]:\n"
            f"    return _PATTERN.findall(text)\n")


def py_pytest(rng: random.Random) -> tuple[str, str]:
    fn = rng.choice(["slugify", "parse_int", "chunked", "reverse_words", "safe_divide"])
    cases = {
        "slugify": ("\"Hello, World!\"", "\"hello-world\""),
        "parse_int": ("\" 42 \"", "42"),
        "chunked": ("range(5), 2", "[[0, 1], [2, 3], [4]]"),
        "reverse_words": ("\"a b c\"", "\"c b a\""),
        "safe_divide": ("6, 3", "2"),
    }
    arg, expected = cases[fn]
    call = f"list({fn}({arg}))" if fn == "chunked" else f"{fn}({arg})"
    mod = rng.choice(["mylib", "helpers", "textkit", "core"])
    return (f"Write a pytest test for `{fn}` from module `{mod}`.",
            f"import pytest\n\nfrom {mod} import {fn}\n\n\n"
            f"def test_{fn}_basic() -> None:\n    assert {call} == {expected}\n")


def py_asyncio(rng: random.Random) -> tuple[str, str]:
    n = rng.choice([3, 5, 10, 20])
    return (f"{rng.choice(VERBS)} an asyncio function that fetches {n} URLs concurrently with "
            f"aiohttp and returns their status codes.",
            f"import asyncio\n\nimport aiohttp\n\n\n"
            f"async def fetch_statuses(urls: list[str], limit: int = {n}) -> list[int]:\n"
            f"    sem = asyncio.Semaphore(limit)\n"
            f"    async with aiohttp.ClientSession() as session:\n"
            f"        async def one(url: str) -> int:\n            async with sem:\n"
            f"                async with session.get(url) as resp:\n"
            f"                    return resp.status\n"
            f"        return await asyncio.gather(*(one(u) for u in urls))\n")


def py_argparse(rng: random.Random) -> tuple[str, str]:
    proj = rng.choice(PROJECTS)
    opt = rng.choice(["--verbose", "--dry-run", "--limit", "--output"])
    extra = {"--verbose": "action=\"store_true\"", "--dry-run": "action=\"store_true\"",
             "--limit": "type=int, default=10", "--output": "default=\"out.txt\""}[opt]
    return (f"{rng.choice(VERBS)} an argparse command line for `{proj}` that takes an input "
            f"path and a `{opt}` option.",
            f"import argparse\n\n\ndef parse_args(argv: list[str] | None = None) -> argparse.Namespace:\n"
            f"    parser = argparse.ArgumentParser(prog=\"{proj}\")\n"
            f"    parser.add_argument(\"path\", help=\"input file\")\n"
            f"    parser.add_argument(\"{opt}\", {extra})\n"
            f"    return parser.parse_args(argv)\n")


def py_dict_ops(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["invert", "merge", "count", "nested_get"])
    if kind == "invert":
        return (f"{rng.choice(VERBS)} a function that inverts a dict (values become keys).",
                "def invert(mapping: dict) -> dict:\n"
                "    return {value: key for key, value in mapping.items()}\n")
    if kind == "merge":
        return (f"{rng.choice(VERBS)} a function that deep-merges two nested dicts.",
                "def deep_merge(a: dict, b: dict) -> dict:\n    out = dict(a)\n"
                "    for key, value in b.items():\n"
                "        if isinstance(value, dict) and isinstance(out.get(key), dict):\n"
                "            out[key] = deep_merge(out[key], value)\n        else:\n"
                "            out[key] = value\n    return out\n")
    if kind == "count":
        ent, fields = pick_entity(rng)
        key = text_field(rng, fields)
        return (f"{rng.choice(VERBS)} a function counting {plural(ent)} per `{key}`.",
                f"from collections import Counter\n\n\n"
                f"def count_by_{key}(items: list[dict]) -> Counter:\n"
                f"    return Counter(item[\"{key}\"] for item in items)\n")
    return (f"{rng.choice(VERBS)} `get_path(d, 'a.b.c')` that reads a nested key by a dotted "
            f"path and returns None when missing.",
            "def get_path(data: dict, path: str, default=None):\n"
            "    for part in path.split(\".\"):\n"
            "        if not isinstance(data, dict) or part not in data:\n"
            "            return default\n        data = data[part]\n    return data\n")


PYTHON_TASKS: list[Callable[[random.Random], tuple[str, str]]] = [
    py_filter_sum, py_dataclass, py_group_by, py_string, py_file_io, py_recursion, py_errors,
    py_generators, py_sorting, py_regex, py_pytest, py_asyncio, py_argparse, py_dict_ops,
]

# -------------------------------------------------------------------------------- sql


def sql_select_where(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    num = numeric_field(rng, fields)
    thr = rng.choice([5, 18, 100, 500, 1000])
    cols = rng.sample([f for f, _, _ in fields], k=rng.randint(2, 4))
    return (f"{rng.choice(SQL_VERBS)} that lists {', '.join(cols)} of all {plural(ent)} "
            f"with {num} greater than {thr}.",
            f"SELECT {', '.join(cols)}\nFROM {plural(ent)}\nWHERE {num} > {thr};")


def sql_group_by(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    key = text_field(rng, fields)
    num = numeric_field(rng, fields)
    agg = rng.choice(["SUM", "AVG", "MAX", "MIN", "COUNT"])
    word = {"SUM": "total", "AVG": "average", "MAX": "maximum", "MIN": "minimum",
            "COUNT": "number of"}[agg]
    expr = "COUNT(*)" if agg == "COUNT" else f"{agg}({num})"
    alias = "n" if agg == "COUNT" else f"{word}_{num}".replace(" ", "_")
    what = f"the {word} {plural(ent)}" if agg == "COUNT" else f"the {word} {num}"
    return (f"{rng.choice(SQL_VERBS)} returning {what} per {key} in the {plural(ent)} table.",
            f"SELECT {key}, {expr} AS {alias}\nFROM {plural(ent)}\nGROUP BY {key}\n"
            f"ORDER BY {alias} DESC;")


def sql_join(rng: random.Random) -> tuple[str, str]:
    pairs = [("users", "orders", "user_id", "email", "total"),
             ("orders", "shipments", "order_id", "status", "carrier"),
             ("customers", "invoices", "customer_id", "name", "amount"),
             ("accounts", "transactions", "account_id", "owner", "amount"),
             ("departments", "employees", "department_id", "name", "salary")]
    parent, child, fk, pcol, ccol = rng.choice(pairs)
    kind = rng.choice(["INNER JOIN", "LEFT JOIN"])
    a, b = parent[0], child[0] if child[0] != parent[0] else child[:2]
    return (f"{rng.choice(SQL_VERBS)} joining {parent} and {child} to show each "
            f"{parent[:-1]}'s {pcol} with the {ccol} of its {child}"
            f"{' (keep ' + parent + ' without ' + child + ')' if kind == 'LEFT JOIN' else ''}.",
            f"SELECT {a}.{pcol}, {b}.{ccol}\nFROM {parent} AS {a}\n{kind} {child} AS {b}\n"
            f"  ON {b}.{fk} = {a}.id;")


def sql_create_table(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    lines = []
    for f, s, _ in fields:
        if f == "id":
            lines.append("    id INTEGER PRIMARY KEY")
        else:
            null = " NOT NULL" if rng.random() < 0.5 else ""
            lines.append(f"    {f} {s}{null}")
    return (f"{rng.choice(SQL_VERBS)} that creates a {plural(ent)} table with columns "
            f"{', '.join(f for f, _, _ in fields)}.",
            f"CREATE TABLE {plural(ent)} (\n" + ",\n".join(lines) + "\n);")


def sql_insert(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    cols = [f for f, _, _ in fields[1:]]
    vals = []
    for _, s, t in fields[1:]:
        if t == "int":
            vals.append(str(rng.randint(1, 90)))
        elif t == "float":
            vals.append(f"{rng.uniform(1, 900):.2f}")
        elif s in ("DATE", "TIMESTAMP"):
            vals.append(f"'2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}'")
        else:
            vals.append(f"'{rng.choice(COUNTRIES + STATUSES + PROJECTS)}'")
    return (f"{rng.choice(SQL_VERBS)} that inserts one new row into {plural(ent)}.",
            f"INSERT INTO {plural(ent)} ({', '.join(cols)})\nVALUES ({', '.join(vals)});")


def sql_update(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    num = numeric_field(rng, fields)
    pct = rng.choice([5, 10, 15, 20, 50])
    row = rng.randint(1, 500)
    if rng.random() < 0.5:
        return (f"{rng.choice(SQL_VERBS)} that raises {num} by {pct}% for the {ent.replace('_', ' ')} "
                f"with id {row}.",
                f"UPDATE {plural(ent)}\nSET {num} = {num} * {1 + pct / 100:.2f}\nWHERE id = {row};")
    key = text_field(rng, fields)
    return (f"{rng.choice(SQL_VERBS)} that sets {key} to 'archived' for all {plural(ent)} with "
            f"{num} below {pct}.",
            f"UPDATE {plural(ent)}\nSET {key} = 'archived'\nWHERE {num} < {pct};")


def sql_delete(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    date_cols = [f for f, s, _ in fields if s in ("DATE", "TIMESTAMP")]
    if date_cols:
        days = rng.choice([30, 90, 365])
        col = date_cols[0]
        return (f"{rng.choice(SQL_VERBS)} that deletes {plural(ent)} whose {col} is older than "
                f"{days} days.",
                f"DELETE FROM {plural(ent)}\nWHERE {col} < CURRENT_DATE - INTERVAL '{days} days';")
    return (f"{rng.choice(SQL_VERBS)} deleting every row of {plural(ent)}.",
            f"DELETE FROM {plural(ent)};")


def sql_top_n(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    num = numeric_field(rng, fields)
    n = rng.choice([3, 5, 10, 20])
    label = text_field(rng, fields)
    return (f"{rng.choice(SQL_VERBS)} for the top {n} {plural(ent)} by {num}.",
            f"SELECT {label}, {num}\nFROM {plural(ent)}\nORDER BY {num} DESC\nLIMIT {n};")


def sql_window(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    part = text_field(rng, fields)
    num = numeric_field(rng, fields)
    fn = rng.choice(["RANK()", "ROW_NUMBER()", "DENSE_RANK()"])
    k = rng.choice([1, 2, 3])
    return (f"{rng.choice(SQL_VERBS)} that returns the top {k} {plural(ent)} by {num} within each "
            f"{part}, using a window function.",
            f"SELECT *\nFROM (\n  SELECT t.*, {fn} OVER (PARTITION BY {part} ORDER BY {num} DESC)"
            f" AS rnk\n  FROM {plural(ent)} AS t\n) ranked\nWHERE rnk <= {k};")


def sql_cte(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    key = text_field(rng, fields)
    num = numeric_field(rng, fields)
    return (f"{rng.choice(SQL_VERBS)} with a CTE: compute the average {num} per {key}, then list "
            f"the {plural(ent)} above their group's average.",
            f"WITH group_avg AS (\n  SELECT {key}, AVG({num}) AS avg_{num}\n  FROM {plural(ent)}\n"
            f"  GROUP BY {key}\n)\nSELECT t.*\nFROM {plural(ent)} AS t\n"
            f"JOIN group_avg AS g ON g.{key} = t.{key}\nWHERE t.{num} > g.avg_{num};")


def sql_having(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    key = text_field(rng, fields)
    n = rng.choice([2, 5, 10, 50])
    return (f"{rng.choice(SQL_VERBS)} listing every {key} that has more than {n} {plural(ent)}.",
            f"SELECT {key}, COUNT(*) AS n\nFROM {plural(ent)}\nGROUP BY {key}\nHAVING COUNT(*) > {n};")


def sql_index(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    cols = rng.sample([f for f, _, _ in fields[1:]], k=rng.randint(1, 2))
    unique = rng.random() < 0.3
    name = f"idx_{plural(ent)}_{'_'.join(cols)}"
    return (f"{rng.choice(SQL_VERBS)} that adds a {'unique ' if unique else ''}index on "
            f"{plural(ent)}({', '.join(cols)}).",
            f"CREATE {'UNIQUE ' if unique else ''}INDEX {name}\n  ON {plural(ent)} ({', '.join(cols)});")


def sql_anti_join(rng: random.Random) -> tuple[str, str]:
    parent, child, fk = rng.choice([("users", "orders", "user_id"),
                                    ("customers", "invoices", "customer_id"),
                                    ("products", "order_items", "product_id"),
                                    ("authors", "books", "author_id")])
    style = rng.choice(["left", "not_exists"])
    prompt = f"{rng.choice(SQL_VERBS)} finding {parent} that have no {child}."
    if style == "left":
        code = (f"SELECT p.*\nFROM {parent} AS p\nLEFT JOIN {child} AS c ON c.{fk} = p.id\n"
                f"WHERE c.id IS NULL;")
    else:
        code = (f"SELECT p.*\nFROM {parent} AS p\nWHERE NOT EXISTS (\n"
                f"  SELECT 1 FROM {child} AS c WHERE c.{fk} = p.id\n);")
    return prompt, code


def sql_date_range(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    dates = [f for f, s, _ in fields if s in ("DATE", "TIMESTAMP")] or ["created_at"]
    col = dates[0]
    m = rng.randint(1, 11)
    return (f"{rng.choice(SQL_VERBS)} counting {plural(ent)} per day between 2026-{m:02d}-01 and "
            f"2026-{m + 1:02d}-01.",
            f"SELECT CAST({col} AS DATE) AS day, COUNT(*) AS n\nFROM {plural(ent)}\n"
            f"WHERE {col} >= DATE '2026-{m:02d}-01' AND {col} < DATE '2026-{m + 1:02d}-01'\n"
            f"GROUP BY day\nORDER BY day;")


def sql_subquery(rng: random.Random) -> tuple[str, str]:
    ent, fields = pick_entity(rng)
    num = numeric_field(rng, fields)
    cmp_ = rng.choice([(">", "above"), ("<", "below")])
    return (f"{rng.choice(SQL_VERBS)} that returns {plural(ent)} with {num} {cmp_[1]} the overall "
            f"average, using a subquery.",
            f"SELECT *\nFROM {plural(ent)}\nWHERE {num} {cmp_[0]} (SELECT AVG({num}) FROM {plural(ent)});")


SQL_TASKS: list[Callable[[random.Random], tuple[str, str]]] = [
    sql_select_where, sql_group_by, sql_join, sql_create_table, sql_insert, sql_update,
    sql_delete, sql_top_n, sql_window, sql_cte, sql_having, sql_index, sql_anti_join,
    sql_date_range, sql_subquery,
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


def generate(domain: str, n: int = N_PER_DOMAIN, seed: int = SEED) -> list[dict[str, str]]:
    """Return ``n`` unique examples for ``domain``, deterministic for a seed."""
    rng = random.Random(f"{seed}-{domain}")
    tasks = {**DOMAINS, **LATE_DOMAINS}[domain]
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > n * 200:
            raise RuntimeError(f"{domain}: only {len(out)} unique examples after {attempts} draws")
        if domain in BANKS and rng.random() < EVERYDAY_SHARE:
            prompt, code = everyday(domain, rng)
        else:
            prompt, code = rng.choice(tasks)(rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        out.append({"prompt": prompt, "reference_code": code})
    return out


def render(rows: list[dict[str, str]]) -> str:
    """Serialise rows as JSONL text."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the three data files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify instead of writing")
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
