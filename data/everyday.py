"""Everyday questions per domain, phrased the many ways people ask them.

The templates in ``generate.py`` vary entities, schemas and projects, but each task
shape has one or two phrasings, all in the register of a written specification
("Write a SQL query that ...").  People ask differently: lower-case one-liners,
"how do i ...", error messages pasted in, library and tool names, questions about
concepts.  This module holds, per domain, a bank of such requests with a short
correct answer, and the phrasings that wrap them.  Both were written for this
project from common programming and writing questions; the phrasings are shared
by all domains, so they carry no hint of the domain by themselves, and only the
request's own words do (as with a real user).

Each bank entry is ``(request, answer)``.  A request that starts with a verb
("reverse a list") is wrapped in a phrasing ("how do i reverse a list?"); one
that is already a question or a statement (ends in ``?`` or starts with a
capital letter) is used with light variations only (case, punctuation, a
lead-in such as "quick question:").
"""

from __future__ import annotations

import random

# Phrasings of a verb-phrase request; ``{q}`` is the request.  Shared by every domain.
PHRASINGS = [
    "{q}", "{q}", "how do i {q}", "how do I {q}?", "how to {q}", "How can I {q}?",
    "what's the easiest way to {q}?", "can you show me how to {q}", "I need to {q}.",
    "I want to {q}, how?", "please {q}", "help me {q}", "is there a quick way to {q}",
    "what is the best way to {q}?", "Could you {q} for me?", "trying to {q}, any idea?",
    "need to {q}", "{q} - example please", "show me an example: {q}", "best practice to {q}",
]
LEAD_INS = ["", "", "", "quick question: ", "hi! ", "newbie here, ", "hey, ", "ok so "]
# Domain hints some people add ("in python, ..."); only on some prompts.
HINTS = {
    "python": ["in python, ", "python: ", "Python 3 - ", "py: "],
    "sql": ["in sql, ", "SQL: ", "postgres: ", "mysql: ", "sqlite: "],
    "docs": ["docs: ", "for the docs: ", "documentation: ", "writing help: "],
}

PYTHON = [
    ("reverse a string", "s = 'hello'\nprint(s[::-1])\n"),
    ("sort a list of tuples by the second element",
     "pairs.sort(key=lambda p: p[1])\n"),
    ("sort a dictionary by its values",
     "by_value = dict(sorted(d.items(), key=lambda kv: kv[1]))\n"),
    ("flatten a nested list", "flat = [x for sub in nested for x in sub]\n"),
    ("count how often each word appears in a string",
     "from collections import Counter\n\ncounts = Counter(text.split())\n"),
    ("find the most common element in a list",
     "from collections import Counter\n\nmost, n = Counter(items).most_common(1)[0]\n"),
    ("split a list into chunks of size n",
     "def chunks(items, n):\n    return [items[i:i + n] for i in range(0, len(items), n)]\n"),
    ("convert a string to an int and handle bad input",
     "try:\n    n = int(text)\nexcept ValueError:\n    n = 0\n"),
    ("format a float with two decimals", "print(f'{price:.2f}')\n"),
    ("pad a number with leading zeros", "print(f'{n:05d}')\n"),
    ("get the current date and time", "from datetime import datetime\n\nnow = datetime.now()\n"),
    ("parse a date string like 2024-03-01", "from datetime import date\n\n"
     "d = date.fromisoformat('2024-03-01')\n"),
    ("add 30 days to a date", "from datetime import timedelta\n\nlater = d + timedelta(days=30)\n"),
    ("measure how long a function takes to run",
     "import time\n\nstart = time.perf_counter()\nwork()\nprint(time.perf_counter() - start)\n"),
    ("read a json file into a dict",
     "import json\n\nwith open('config.json', encoding='utf-8') as f:\n    cfg = json.load(f)\n"),
    ("write a dict to a json file with indentation",
     "import json\n\nwith open('out.json', 'w', encoding='utf-8') as f:\n"
     "    json.dump(data, f, indent=2)\n"),
    ("read a text file line by line",
     "with open('notes.txt', encoding='utf-8') as f:\n    for line in f:\n"
     "        print(line.rstrip())\n"),
    ("append a line to a file", "with open('log.txt', 'a', encoding='utf-8') as f:\n"
     "    f.write('done\\n')\n"),
    ("check if a file exists", "from pathlib import Path\n\nif Path('data.csv').exists():\n"
     "    ...\n"),
    ("list every file in a directory", "from pathlib import Path\n\n"
     "names = [p.name for p in Path('.').iterdir() if p.is_file()]\n"),
    ("create a folder if it doesn't exist", "from pathlib import Path\n\n"
     "Path('out/plots').mkdir(parents=True, exist_ok=True)\n"),
    ("get the file extension from a path", "from pathlib import Path\n\n"
     "ext = Path('report.final.pdf').suffix  # '.pdf'\n"),
    ("run a shell command and capture its output", "import subprocess\n\n"
     "out = subprocess.run(['ls', '-l'], capture_output=True, text=True, check=True).stdout\n"),
    ("read command line arguments", "import sys\n\nargs = sys.argv[1:]\n"),
    ("read an environment variable with a default", "import os\n\n"
     "level = os.environ.get('LOG_LEVEL', 'INFO')\n"),
    ("make an http get request and parse the json response", "import requests\n\n"
     "resp = requests.get(url, timeout=10)\nresp.raise_for_status()\ndata = resp.json()\n"),
    ("post json to an api with requests", "import requests\n\n"
     "requests.post(url, json={'name': 'x'}, timeout=10).raise_for_status()\n"),
    ("download a file with urllib", "from urllib.request import urlretrieve\n\n"
     "urlretrieve(url, 'file.zip')\n"),
    ("load a csv into a pandas dataframe", "import pandas as pd\n\ndf = pd.read_csv('sales.csv')\n"),
    ("filter rows of a pandas dataframe where a column is above a value",
     "big = df[df['amount'] > 100]\n"),
    ("drop rows with missing values in pandas", "df = df.dropna()\n"),
    ("rename columns of a dataframe", "df = df.rename(columns={'old': 'new'})\n"),
    ("plot a line chart with matplotlib", "import matplotlib.pyplot as plt\n\n"
     "plt.plot(xs, ys)\nplt.xlabel('x')\nplt.show()\n"),
    ("create a numpy array of zeros", "import numpy as np\n\na = np.zeros((3, 4))\n"),
    ("get unique values of a list while keeping order", "unique = list(dict.fromkeys(items))\n"),
    ("swap two variables", "a, b = b, a\n"),
    ("loop over two lists at the same time", "for name, score in zip(names, scores):\n"
     "    print(name, score)\n"),
    ("loop with an index", "for i, item in enumerate(items):\n    print(i, item)\n"),
    ("invert a dictionary", "inverted = {v: k for k, v in d.items()}\n"),
    ("get a value from a dict without a KeyError", "value = d.get('key', default)\n"),
    ("count items with a defaultdict", "from collections import defaultdict\n\n"
     "counts = defaultdict(int)\nfor w in words:\n    counts[w] += 1\n"),
    ("remove an item from a list by value", "items.remove('b')  # first match only\n"),
    ("remove whitespace from the start and end of a string", "clean = text.strip()\n"),
    ("check if a string contains a substring", "if 'err' in line:\n    ...\n"),
    ("replace all occurrences of a word in a string", "text = text.replace('cat', 'dog')\n"),
    ("split a string on commas", "parts = [p.strip() for p in line.split(',')]\n"),
    ("join a list of strings with a separator", "line = ', '.join(names)\n"),
    ("capitalize the first letter of each word", "title = text.title()\n"),
    ("check if a number is prime", "def is_prime(n):\n    if n < 2:\n        return False\n"
     "    return all(n % d for d in range(2, int(n ** 0.5) + 1))\n"),
    ("compute a factorial", "import math\n\nprint(math.factorial(10))\n"),
    ("generate a random number between 1 and 10", "import random\n\nn = random.randint(1, 10)\n"),
    ("pick a random item from a list", "import random\n\nchoice = random.choice(items)\n"),
    ("shuffle a list", "import random\n\nrandom.shuffle(items)  # in place\n"),
    ("write a class with a constructor and a method", "class Counter:\n"
     "    def __init__(self, start=0):\n        self.value = start\n\n"
     "    def increment(self):\n        self.value += 1\n"),
    ("define a dataclass", "from dataclasses import dataclass\n\n\n@dataclass\nclass Point:\n"
     "    x: float\n    y: float\n"),
    ("write a decorator that logs function calls", "import functools\n\n\ndef logged(fn):\n"
     "    @functools.wraps(fn)\n    def wrapper(*args, **kwargs):\n"
     "        print('calling', fn.__name__)\n        return fn(*args, **kwargs)\n"
     "    return wrapper\n"),
    ("cache the results of an expensive function", "from functools import lru_cache\n\n\n"
     "@lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"),
    ("write a generator that yields numbers forever", "def naturals():\n    n = 0\n"
     "    while True:\n        yield n\n        n += 1\n"),
    ("raise a custom exception", "class ConfigError(Exception):\n    pass\n\n\n"
     "raise ConfigError('missing key: name')\n"),
    ("use try except finally", "try:\n    f = open(path)\nexcept OSError as err:\n"
     "    print(err)\nelse:\n    f.close()\nfinally:\n    print('done')\n"),
    ("set up logging to a file", "import logging\n\nlogging.basicConfig(filename='app.log', "
     "level=logging.INFO)\nlogging.info('started')\n"),
    ("type hint a function that returns an optional string",
     "def find(name: str) -> str | None:\n    ...\n"),
    ("write a lambda that squares a number", "square = lambda x: x * x\n"),
    ("use map and filter on a list", "evens = list(filter(lambda x: x % 2 == 0, nums))\n"
     "doubled = list(map(lambda x: 2 * x, nums))\n"),
    ("run two functions in parallel threads", "from concurrent.futures import ThreadPoolExecutor"
     "\n\nwith ThreadPoolExecutor() as pool:\n    a, b = pool.map(lambda f: f(), [job1, job2])\n"),
    ("sleep for two seconds", "import time\n\ntime.sleep(2)\n"),
    ("install a package with pip", "python -m pip install requests\n"),
    ("make a virtualenv and activate it", "python -m venv .venv\nsource .venv/bin/activate\n"),
    ("write a unit test with pytest", "def test_add():\n    assert add(2, 3) == 5\n"),
    ("mock a function in a test", "from unittest import mock\n\n"
     "with mock.patch('app.send_email') as send:\n    notify()\n    send.assert_called_once()\n"),
    ("pickle an object to disk", "import pickle\n\nwith open('model.pkl', 'wb') as f:\n"
     "    pickle.dump(obj, f)\n"),
    ("deep copy a nested list", "import copy\n\nclone = copy.deepcopy(grid)\n"),
    ("find the index of an element in a list", "i = items.index('x')  # ValueError if absent\n"),
    ("get the last element of a list", "last = items[-1]\n"),
    ("check the python version at runtime", "import sys\n\nprint(sys.version_info)\n"),
    ("What does the yield keyword do?", "It makes the function a generator: each `yield` "
     "hands one value to the caller and pauses until the next value is asked for.\n"),
    ("What is the difference between == and is?", "`==` compares values, `is` compares "
     "identity (the same object): `[1] == [1]` is True, `[1] is [1]` is False.\n"),
    ("Why am I getting IndexError: list index out of range?", "You read items[i] with i >= "
     "len(items); loop over the items directly or check the length first.\n"),
    ("What does *args and **kwargs mean in a function definition?", "`*args` collects extra "
     "positional arguments as a tuple, `**kwargs` extra keyword arguments as a dict.\n"),
    ("AttributeError: 'NoneType' object has no attribute 'append' - what am I doing wrong?",
     "A method like list.sort() or append returns None; don't assign its result:\n"
     "items.append(x)  # not items = items.append(x)\n"),
    ("ModuleNotFoundError: No module named 'numpy' even though I installed it",
     "Install it for the interpreter you run: python -m pip install numpy\n"),
    ("How are lists different from sets?", "A list keeps order and duplicates; a set is "
     "unordered, holds each value once and tests membership in constant time.\n"),
    ("What is a virtual environment and why use one?", "An isolated Python install per "
     "project, so each project's packages and versions don't clash.\n"),
    ("Is Python pass-by-reference or pass-by-value?", "Names are passed by object reference: "
     "mutating a list inside a function changes it for the caller, rebinding the name does "
     "not.\n"),
    ("What's a f-string?", "A string literal with expressions in braces: f'{name} is {age}'.\n"),
    ("KeyError when reading a dictionary, how to avoid it?", "Use d.get(key) or check "
     "`if key in d` first.\n"),
    ("my for loop over a dict only gives me keys", "for key, value in d.items():\n"
     "    print(key, value)\n"),
]

SQL = [
    ("select all columns from a table", "SELECT * FROM customers;\n"),
    ("count the rows in a table", "SELECT COUNT(*) FROM orders;\n"),
    ("find duplicate emails in the users table", "SELECT email, COUNT(*)\nFROM users\n"
     "GROUP BY email\nHAVING COUNT(*) > 1;\n"),
    ("delete duplicate rows but keep one", "DELETE FROM users a\nUSING users b\n"
     "WHERE a.id > b.id AND a.email = b.email;\n"),
    ("get the nth highest salary", "SELECT DISTINCT salary\nFROM employees\n"
     "ORDER BY salary DESC\nLIMIT 1 OFFSET 2;\n"),
    ("add a column to an existing table", "ALTER TABLE users ADD COLUMN phone TEXT;\n"),
    ("rename a column", "ALTER TABLE users RENAME COLUMN phone TO phone_number;\n"),
    ("drop a column", "ALTER TABLE users DROP COLUMN legacy_flag;\n"),
    ("change the type of a column", "ALTER TABLE orders ALTER COLUMN total TYPE NUMERIC(12,2);\n"),
    ("add a foreign key constraint", "ALTER TABLE orders\nADD CONSTRAINT fk_user\n"
     "FOREIGN KEY (user_id) REFERENCES users(id);\n"),
    ("make a column unique", "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\n"),
    ("set a default value on a column", "ALTER TABLE orders ALTER COLUMN status SET DEFAULT "
     "'new';\n"),
    ("create a table with an auto increment primary key", "CREATE TABLE notes (\n"
     "    id SERIAL PRIMARY KEY,\n    body TEXT NOT NULL\n);\n"),
    ("insert several rows at once", "INSERT INTO tags (name) VALUES ('red'), ('green'), "
     "('blue');\n"),
    ("insert or update when the row already exists", "INSERT INTO stock (sku, qty)\n"
     "VALUES ('A1', 5)\nON CONFLICT (sku) DO UPDATE SET qty = EXCLUDED.qty;\n"),
    ("copy rows from one table into another", "INSERT INTO archive_orders\n"
     "SELECT * FROM orders WHERE placed_at < '2024-01-01';\n"),
    ("update rows using values from another table", "UPDATE orders o\n"
     "SET country = u.country\nFROM users u\nWHERE o.user_id = u.id;\n"),
    ("empty a table", "TRUNCATE TABLE staging_events;\n"),
    ("remove a table", "DROP TABLE IF EXISTS old_logs;\n"),
    ("rows where a column is null", "SELECT * FROM customers WHERE phone IS NULL;\n"),
    ("show a default when the value is null", "SELECT name, COALESCE(nickname, name) AS shown\n"
     "FROM members;\n"),
    ("filter with LIKE for names starting with A", "SELECT * FROM people WHERE name LIKE 'A%';\n"),
    ("match rows against a list of values", "SELECT * FROM orders WHERE status IN ('new', "
     "'paid');\n"),
    ("select rows between two dates", "SELECT * FROM payments\n"
     "WHERE paid_at BETWEEN '2024-01-01' AND '2024-01-31';\n"),
    ("group by month and count", "SELECT date_trunc('month', created_at) AS month, COUNT(*)\n"
     "FROM signups\nGROUP BY month\nORDER BY month;\n"),
    ("extract the year from a date column", "SELECT EXTRACT(YEAR FROM hired_on) AS year\n"
     "FROM staff;\n"),
    ("calculate the age from a birth date", "SELECT name, AGE(CURRENT_DATE, born_on) AS age\n"
     "FROM people;\n"),
    ("left join two tables and keep rows without a match", "SELECT c.name, o.id\n"
     "FROM clients c\nLEFT JOIN orders o ON o.client_id = c.id;\n"),
    ("join three tables", "SELECT o.id, c.name, p.title\nFROM orders o\n"
     "JOIN clients c ON c.id = o.client_id\nJOIN products p ON p.id = o.product_id;\n"),
    ("self join to list employees with their managers", "SELECT e.name, m.name AS manager\n"
     "FROM staff e\nLEFT JOIN staff m ON m.id = e.manager_id;\n"),
    ("find customers with no orders", "SELECT c.*\nFROM clients c\n"
     "WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.client_id = c.id);\n"),
    ("a cumulative sum over time", "SELECT day, amount,\n"
     "       SUM(amount) OVER (ORDER BY day) AS running_total\nFROM revenue;\n"),
    ("rank rows within each group", "SELECT dept, name,\n"
     "       RANK() OVER (PARTITION BY dept ORDER BY pay DESC) AS rnk\nFROM staff;\n"),
    ("compare each row with the previous one", "SELECT day, visits,\n"
     "       visits - LAG(visits) OVER (ORDER BY day) AS change\nFROM traffic;\n"),
    ("a moving average over 7 days", "SELECT day, AVG(visits) OVER (ORDER BY day ROWS "
     "BETWEEN 6 PRECEDING AND CURRENT ROW)\nFROM traffic;\n"),
    ("pivot rows into columns with CASE", "SELECT region,\n"
     "       SUM(CASE WHEN quarter = 1 THEN revenue END) AS q1,\n"
     "       SUM(CASE WHEN quarter = 2 THEN revenue END) AS q2\nFROM sales\nGROUP BY region;\n"),
    ("conditional counting in one query", "SELECT COUNT(*) FILTER (WHERE status = 'open') AS "
     "open,\n       COUNT(*) FILTER (WHERE status = 'closed') AS closed\nFROM issues;\n"),
    ("the share of each category in percent", "SELECT category,\n"
     "       100.0 * COUNT(*) / SUM(COUNT(*)) OVER () AS pct\nFROM items\nGROUP BY category;\n"),
    ("page through results 20 at a time", "SELECT * FROM posts\nORDER BY created_at DESC\n"
     "LIMIT 20 OFFSET 40;\n"),
    ("union two result sets without duplicates", "SELECT email FROM leads\nUNION\n"
     "SELECT email FROM clients;\n"),
    ("rows in one table but not the other", "SELECT id FROM table_a\nEXCEPT\n"
     "SELECT id FROM table_b;\n"),
    ("string concatenation of two columns", "SELECT first_name || ' ' || last_name AS "
     "full_name\nFROM people;\n"),
    ("aggregate strings into a comma separated list", "SELECT team, STRING_AGG(name, ', ')\n"
     "FROM players\nGROUP BY team;\n"),
    ("case insensitive match", "SELECT * FROM people WHERE LOWER(city) = 'berlin';\n"),
    ("round an average to two decimals", "SELECT ROUND(AVG(score), 2) FROM results;\n"),
    ("the latest row per group", "SELECT DISTINCT ON (device_id) *\nFROM pings\n"
     "ORDER BY device_id, seen_at DESC;\n"),
    ("a recursive query over a parent child tree", "WITH RECURSIVE tree AS (\n"
     "    SELECT id, parent_id FROM nodes WHERE id = 1\n    UNION ALL\n"
     "    SELECT n.id, n.parent_id FROM nodes n JOIN tree t ON n.parent_id = t.id\n)\n"
     "SELECT * FROM tree;\n"),
    ("create a view", "CREATE VIEW paid_orders AS\nSELECT * FROM orders WHERE status = 'paid';\n"),
    ("create an index to speed up a slow query", "CREATE INDEX idx_orders_user ON orders "
     "(user_id);\n"),
    ("see the query plan", "EXPLAIN ANALYZE\nSELECT * FROM orders WHERE user_id = 7;\n"),
    ("wrap two updates in a transaction", "BEGIN;\nUPDATE wallets SET balance = balance - 50 "
     "WHERE id = 1;\nUPDATE wallets SET balance = balance + 50 WHERE id = 2;\nCOMMIT;\n"),
    ("undo changes with rollback", "BEGIN;\nDELETE FROM carts;\nROLLBACK;\n"),
    ("grant read access to a user", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporter;\n"),
    ("create a database user", "CREATE USER analyst WITH PASSWORD 'change-me';\n"),
    ("list all tables in the database", "SELECT table_name\nFROM information_schema.tables\n"
     "WHERE table_schema = 'public';\n"),
    ("describe the columns of a table", "SELECT column_name, data_type\n"
     "FROM information_schema.columns\nWHERE table_name = 'orders';\n"),
    ("write a stored procedure", "CREATE PROCEDURE archive_old()\nLANGUAGE sql\nAS $$\n"
     "    DELETE FROM sessions WHERE seen_at < now() - interval '30 days';\n$$;\n"),
    ("a trigger that sets updated_at", "CREATE TRIGGER touch BEFORE UPDATE ON docs\n"
     "FOR EACH ROW EXECUTE FUNCTION set_updated_at();\n"),
    ("query a json column", "SELECT payload->>'event' AS event\nFROM webhooks\n"
     "WHERE payload->>'source' = 'stripe';\n"),
    ("random sample of rows", "SELECT * FROM visitors ORDER BY random() LIMIT 100;\n"),
    ("average per group only for big groups", "SELECT shop, AVG(total)\nFROM receipts\n"
     "GROUP BY shop\nHAVING COUNT(*) >= 10;\n"),
    ("distinct count of values", "SELECT COUNT(DISTINCT customer_id) FROM receipts;\n"),
    ("min and max in one query", "SELECT MIN(price), MAX(price) FROM listings;\n"),
    ("customers who bought in every month", "SELECT customer_id\nFROM receipts\n"
     "GROUP BY customer_id\nHAVING COUNT(DISTINCT date_trunc('month', paid_at)) = 12;\n"),
    ("back up a postgres database", "pg_dump -Fc shop > shop.dump\n"),
    ("What is the difference between INNER JOIN and LEFT JOIN?", "INNER JOIN keeps only rows "
     "with a match on both sides; LEFT JOIN keeps every row of the left table and fills "
     "missing right-hand columns with NULL.\n"),
    ("What does GROUP BY do?", "It folds rows with equal values in the listed columns into one "
     "row, so aggregates such as COUNT or SUM are computed per group.\n"),
    ("Why does my query say column must appear in the GROUP BY clause?", "Every selected "
     "column must be grouped or aggregated:\nSELECT dept, MAX(pay) FROM staff GROUP BY dept;\n"),
    ("ERROR: duplicate key value violates unique constraint", "A row with that key already "
     "exists; use ON CONFLICT DO NOTHING or DO UPDATE, or pick a new key.\n"),
    ("What is a primary key?", "A column (or columns) whose value identifies each row: unique "
     "and never NULL.\n"),
    ("When should I normalize a schema?", "When the same fact is stored in several rows: move "
     "it into its own table and reference it by key, so updates happen in one place.\n"),
    ("is COUNT(*) slower than COUNT(id)?", "No; COUNT(*) counts rows, COUNT(id) counts non-NULL "
     "ids, and both scan the same rows.\n"),
    ("Why is NULL = NULL not true?", "NULL means unknown, so comparisons with it are unknown; "
     "use IS NULL or IS NOT DISTINCT FROM.\n"),
    ("What's the difference between DELETE and TRUNCATE?", "DELETE removes matching rows one "
     "by one and can have a WHERE; TRUNCATE empties the whole table at once.\n"),
    ("my join returns way too many rows", "A join key is not unique on one side; check with "
     "SELECT key, COUNT(*) ... GROUP BY key HAVING COUNT(*) > 1.\n"),
]

DOCS = [
    ("write a README for my project", "# Project\n\nOne sentence on what it does.\n\n"
     "## Install\n\n## Usage\n\n## License\n"),
    ("write the opening paragraph of a README", "mytool turns a folder of notes into a "
     "searchable website, with no server to run.\n"),
    ("add a usage section to the readme", "## Usage\n\n```\nmytool build notes/ --out site/\n"
     "```\n"),
    ("write a contributing guide", "# Contributing\n\nFork, create a branch, add tests, and open "
     "a pull request; run the linter before you push.\n"),
    ("write a pull request description", "## What\nShort summary.\n\n## Why\nThe problem.\n\n"
     "## How to test\nSteps.\n"),
    ("write a good issue template for bug reports", "**Describe the bug**\n\n**Steps to "
     "reproduce**\n\n**Expected behavior**\n\n**Version**\n"),
    ("write release notes for version 2.0", "## 2.0.0\n\n### Breaking changes\n- ...\n\n"
     "### New\n- ...\n"),
    ("announce a breaking change to users", "Heads up: from 3.0 the `--fast` flag is gone; "
     "use `--mode fast` instead.\n"),
    ("write a deprecation notice", ".. deprecated:: 1.4\n   Use :func:`load` instead; this "
     "will be removed in 2.0.\n"),
    ("document a command line flag", "`--verbose`, `-v`\n: Print each step as it runs. "
     "Repeat for more detail.\n"),
    ("describe an environment variable in the docs", "`APP_TIMEOUT` (seconds, default 30): "
     "how long a request may take before it is cancelled.\n"),
    ("write a getting started guide", "# Getting started\n\n1. Install.\n2. Create a config.\n"
     "3. Run your first job.\n"),
    ("write a quickstart in five steps", "1. Install\n2. Log in\n3. Create a project\n"
     "4. Run it\n5. See the results\n"),
    ("explain a concept in plain words for beginners", "A cache keeps a copy of a recent "
     "answer so the next identical question is answered without redoing the work.\n"),
    ("write an FAQ entry", "**Why is my upload slow?**\nLarge files are hashed first; pass "
     "`--no-verify` to skip that.\n"),
    ("write a troubleshooting section", "## Troubleshooting\n\n**Permission denied**: run the "
     "installer as your user, not root.\n"),
    ("write alt text for a diagram", "Diagram: the browser sends a request to the gateway, "
     "which forwards it to one of three workers.\n"),
    ("write a docstring for a function", "\"\"\"Return the total price of the cart.\n\n"
     "Parameters\n----------\ncart : list of Item\n\"\"\"\n"),
    ("document the parameters and return value of a method", "Parameters\n----------\n"
     "path : str\n    Where to read from.\n\nReturns\n-------\nbytes\n    The file content.\n"),
    ("add an example section to a docstring", "Examples\n--------\n>>> add(2, 3)\n5\n"),
    ("write a module level docstring", "\"\"\"Helpers for reading and writing the cache "
     "on disk.\"\"\"\n"),
    ("write a comment explaining a tricky line", "# Sleep a little longer each retry so a "
     "busy server can recover (exponential backoff).\n"),
    ("document a REST endpoint", "### GET /users/{id}\n\nReturns one user.\n\n"
     "**Responses**: 200 user object, 404 not found.\n"),
    ("describe the error codes an api returns", "| code | meaning |\n|---|---|\n"
     "| 400 | bad request |\n| 401 | not logged in |\n| 429 | too many requests |\n"),
    ("write an architecture overview", "## Architecture\n\nThe app has three parts: the web "
     "front end, the API and a worker that runs jobs from a queue.\n"),
    ("write an architecture decision record", "# ADR 7: Use a message queue\n\n## Status\n"
     "Accepted\n\n## Context\n\n## Decision\n\n## Consequences\n"),
    ("write a design doc outline", "# Design: offline sync\n\n## Goals\n## Non-goals\n"
     "## Proposal\n## Alternatives\n## Risks\n"),
    ("write a runbook for a service outage", "## When the API is down\n\n1. Check the status "
     "page.\n2. Look at the error dashboard.\n3. Restart the workers.\n"),
    ("write an incident postmortem summary", "## Summary\nFrom 14:02 to 14:40 logins failed "
     "because an expired certificate was not renewed.\n\n## Action items\n"),
    ("write a code of conduct", "We want a friendly, harassment-free community; be kind, "
     "assume good intent, and report problems to the maintainers.\n"),
    ("write a security policy", "# Security\n\nPlease report vulnerabilities privately to "
     "security@example.org; we answer within three days.\n"),
    ("write a license section", "## License\n\nMIT. See LICENSE for the full text.\n"),
    ("write a glossary", "**Node**: one machine that runs the agent.\n**Job**: a unit of work "
     "that a node runs.\n"),
    ("write a table of contents for the manual", "1. Introduction\n2. Installation\n"
     "3. Configuration\n4. Reference\n5. FAQ\n"),
    ("write a how-to guide for a common task", "## How to rotate your API key\n\n1. Open "
     "Settings.\n2. Click Rotate.\n3. Update your clients.\n"),
    ("write onboarding docs for new team members", "## Your first week\n\n- Get access to the "
     "repository\n- Run the project locally\n- Pick a starter issue\n"),
    ("write a changelog", "# Changelog\n\n## [1.1.0]\n### Added\n- Export to CSV.\n\n"
     "### Fixed\n- Crash on empty input.\n"),
    ("write a commit message", "parser: accept trailing commas\n\nConfig files written by "
     "other tools often end lists with a comma.\n"),
    ("write an upgrade guide", "## Upgrading from 1.x\n\n1. Rename `config.yml` to "
     "`app.toml`.\n2. Run the migration command.\n"),
    ("rewrite this paragraph so it is clearer", "Shorter sentences, one idea each, the "
     "important word first, and no passive voice where a person acts.\n"),
    ("proofread my documentation", "Fix typos, keep one tense, use the same name for a thing "
     "everywhere, and check every link.\n"),
    ("write a tutorial intro", "In this tutorial you will build a small to-do app and learn "
     "how routes, templates and forms fit together.\n"),
    ("write a note box warning users about data loss", ".. warning::\n   This command deletes "
     "the folder and everything in it.\n"),
    ("write a summary of the project for the website", "A fast, friendly tool to keep your "
     "team's notes in one place.\n"),
    ("explain semantic versioning in the docs", "Versions are MAJOR.MINOR.PATCH: major for "
     "breaking changes, minor for new features, patch for fixes.\n"),
    ("write a badge line for the top of the README", "[![CI](badge.svg)](actions) "
     "[![License: MIT](mit.svg)](LICENSE)\n"),
    ("document the system requirements", "## Requirements\n\n- 4 GB of memory\n- Linux or "
     "macOS\n- Python 3.10 or newer\n"),
    ("write a support section telling people where to ask questions", "## Support\n\nAsk in "
     "the discussion forum; file bugs in the issue tracker.\n"),
    ("How should I structure the docs for a library?", "Four kinds of pages: tutorials, how-to "
     "guides, reference and explanations; each answers a different need.\n"),
    ("What makes a good README?", "Say what it is in one line, show the install and a first "
     "example, then link to the full docs.\n"),
    ("What should a commit message contain?", "A short summary line in the imperative, a blank "
     "line, then why the change was made.\n"),
    ("How long should a docstring be?", "One summary line; add parameters, returns and an "
     "example when the function is public or surprising.\n"),
    ("What's the difference between a tutorial and a how-to guide?", "A tutorial teaches a "
     "beginner by doing; a how-to guide helps someone who knows the basics solve one task.\n"),
    ("Should docs be written in second person?", "Yes, address the reader as 'you' and use "
     "the imperative for steps.\n"),
    ("Markdown or reStructuredText for documentation?", "Markdown is simpler and everywhere; "
     "reStructuredText has richer cross-references for Sphinx.\n"),
    ("our wiki is a mess, how do we organise it", "Group pages by the reader's task, give "
     "each page an owner, and archive what nobody updated in a year.\n"),
]

BANKS = {"python": PYTHON, "sql": SQL, "docs": DOCS}

# Parametric requests: the same shape about many subjects, so that a domain's words
# ("docstring", "table") and not the subject's ("download a file", "products") decide.
BEHAVIOURS = [
    "downloads a file and returns its path", "parses a config file", "retries a network call",
    "merges two sorted lists", "validates an email address", "resizes an image",
    "sends a notification email", "computes a checksum of a file", "converts csv to json",
    "caches results in memory", "paginates api results", "hashes a password",
    "uploads logs to storage", "schedules a background job", "renders a template",
]
THINGS = [("products", "price"), ("orders", "total"), ("employees", "salary"),
          ("customers", "lifetime_value"), ("songs", "plays"), ("hotels", "rating"),
          ("cars", "mileage"), ("movies", "box_office"), ("students", "grade"),
          ("houses", "price"), ("flights", "delay_minutes"), ("articles", "views")]
ADJECTIVES = {"price": "expensive", "total": "largest", "salary": "best paid",
              "lifetime_value": "most valuable", "plays": "most played", "rating": "best rated",
              "mileage": "most driven", "box_office": "highest grossing", "grade": "best",
              "delay_minutes": "most delayed", "views": "most read"}


def docs_about_code(rng: random.Random) -> tuple[str, str]:
    """A docs request about some code: the code's words must not decide the domain."""
    what = rng.choice(BEHAVIOURS)
    kind = rng.choice(["a docstring for a function that", "docs for a helper that",
                       "a README section for a script that", "a usage example for a tool that",
                       "the reference entry of a function that", "a comment block for code that"])
    verb = rng.choice(["write", "draft", "document with", "give me"])
    return (f"{verb} {kind} {what}",
            f"\"\"\"{what[0].upper() + what[1:]}.\n\nExplain the inputs, what is returned "
            f"and which errors are raised.\n\"\"\"\n")


def sql_top(rng: random.Random) -> tuple[str, str]:
    """An everyday ranking question about some table."""
    table, col = rng.choice(THINGS)
    n = rng.choice([3, 5, 10, 20])
    ask = rng.choice([f"show me the {n} {ADJECTIVES[col]} {table}",
                      f"which {n} {table} have the highest {col.replace('_', ' ')}",
                      f"top {n} {table} by {col} in the database",
                      f"list {table} from the table sorted by {col}, biggest first"])
    return ask, f"SELECT *\nFROM {table}\nORDER BY {col} DESC\nLIMIT {n};\n"


def python_with_table_words(rng: random.Random) -> tuple[str, str]:
    """A python request about records: words like 'table' alone must not decide."""
    table, col = rng.choice(THINGS)
    ask = rng.choice([f"sort a list of {table} dicts by {col} in python",
                      f"write a python function that returns the {table} with the highest "
                      f"{col} from a list", f"group a list of {table} by a key with itertools",
                      f"filter a list of {table} objects where {col} is above a threshold"])
    return ask, f"best = max({table}, key=lambda r: r['{col}'])\n"


PARAMETRIC = {"python": [python_with_table_words], "sql": [sql_top], "docs": [docs_about_code]}


def is_phrase(request: str) -> bool:
    """A verb-phrase request (wrapped in a phrasing), not a question or statement."""
    return request[:1].islower() and not request.endswith("?")


def phrase(request: str, domain: str, rng: random.Random) -> str:
    """One way a person might ask ``request`` (a bank entry of ``domain``)."""
    if is_phrase(request):
        text = rng.choice(PHRASINGS).format(q=request)
    else:
        text = request if rng.random() < 0.6 else request.rstrip("?") + rng.choice(["", "??"])
        if rng.random() < 0.3:
            text = text[:1].lower() + text[1:]
    if rng.random() < 0.25:
        text = rng.choice(HINTS[domain]) + text
    return rng.choice(LEAD_INS) + text


def everyday(domain: str, rng: random.Random) -> tuple[str, str]:
    """A random everyday request of ``domain`` and its answer."""
    if rng.random() < 0.15:
        request, answer = rng.choice(PARAMETRIC[domain])(rng)
    else:
        request, answer = rng.choice(BANKS[domain])
    return phrase(request, domain, rng), answer
