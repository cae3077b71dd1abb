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

Each bank entry is ``(request, answer)``, and for Python and SQL ``(request, answer,
check)``: every answer is executable and ``verify.py`` runs it.  A SQL answer runs in
sqlite against the tables its ``db(...)`` check names (``TABLES`` below, with sample
rows); concept questions are answered with SQL comments and a runnable example.  A
Python answer runs with the fixtures of its ``PyCheck`` (names it uses, files it
reads) and passes its asserts; only answers that need the network or are too slow are
compiled without running (``compile_only``).

A request that starts with a verb ("reverse a list") is wrapped in a phrasing ("how
do i reverse a list?"); one that is already a question or a statement (ends in ``?``
or starts with a capital letter) is used with light variations only (case,
punctuation, a lead-in such as "quick question:").  Some SQL requests also say which
table they are about, as people paste their schema.
"""

from __future__ import annotations

import random

from verify import PyCheck, SqlCheck, describe_tables

# Phrasings of a verb-phrase request; ``{q}`` is the request.  Shared by every domain.
PHRASINGS = [
    "{q}", "{q}", "how do i {q}", "how do I {q}?", "how to {q}", "How can I {q}?",
    "what's the easiest way to {q}?", "can you show me how to {q}", "I need to {q}.",
    "I want to {q}, how?", "please {q}", "help me {q}", "is there a quick way to {q}",
    "what is the best way to {q}?", "Could you {q} for me?", "trying to {q}, any idea?",
    "need to {q}", "{q} - example please", "show me an example: {q}", "best practice to {q}",
]
LEAD_INS = ["", "", "", "quick question: ", "hi! ", "newbie here, ", "hey, ", "ok so "]
# Domain hints some people add ("in python, ..."); only on some prompts.  The SQL
# answers are SQLite (that is where they are checked), so the hints name no other dialect.
HINTS = {
    "python": ["in python, ", "python: ", "Python 3 - ", "py: "],
    "sql": ["in sql, ", "SQL: ", "sqlite: ", "in sqlite, ", "sqlite3: "],
    "docs": ["docs: ", "for the docs: ", "documentation: ", "writing help: "],
}
SCHEMA_MENTION = 0.3  # everyday SQL requests (verb phrases) that also name their table(s)


def run(given: str = "", then: str = "", **kwargs) -> PyCheck:
    """A Python answer that runs: ``given`` defines the names it uses, ``then`` asserts."""
    return PyCheck(given=given, then=then, **kwargs)


PYTHON = [
    ("reverse a string", "s = 'hello'\nprint(s[::-1])\n", run(then="assert s[::-1] == 'olleh'\n")),
    ("sort a list of tuples by the second element",
     "pairs.sort(key=lambda p: p[1])\n",
     run("pairs = [(1, 'b'), (2, 'a'), (3, 'c')]\n",
         "assert pairs == [(2, 'a'), (1, 'b'), (3, 'c')]\n")),
    ("sort a dictionary by its values",
     "by_value = dict(sorted(d.items(), key=lambda kv: kv[1]))\n",
     run("d = {'b': 2, 'a': 3, 'c': 1}\n", "assert list(by_value) == ['c', 'b', 'a']\n")),
    ("flatten a nested list", "flat = [x for sub in nested for x in sub]\n",
     run("nested = [[1, 2], [3], []]\n", "assert flat == [1, 2, 3]\n")),
    ("count how often each word appears in a string",
     "from collections import Counter\n\ncounts = Counter(text.split())\n",
     run("text = 'to be or not to be'\n", "assert counts['to'] == 2 and counts['or'] == 1\n")),
    ("find the most common element in a list",
     "from collections import Counter\n\nmost, n = Counter(items).most_common(1)[0]\n",
     run("items = ['a', 'x', 'b', 'x']\n", "assert (most, n) == ('x', 2)\n")),
    ("split a list into chunks of size n",
     "def chunks(items, n):\n    return [items[i:i + n] for i in range(0, len(items), n)]\n",
     run(then="assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]\n")),
    ("convert a string to an int and handle bad input",
     "try:\n    n = int(text)\nexcept ValueError:\n    n = 0\n",
     run("text = 'twelve'\n", "assert n == 0\n")),
    ("format a float with two decimals", "print(f'{price:.2f}')\n",
     run("price = 3.14159\n", "assert f'{price:.2f}' == '3.14'\n")),
    ("pad a number with leading zeros", "print(f'{n:05d}')\n",
     run("n = 42\n", "assert f'{n:05d}' == '00042'\n")),
    ("get the current date and time", "from datetime import datetime\n\nnow = datetime.now()\n",
     run(then="assert now.year >= 2024\n")),
    ("parse a date string like 2024-03-01", "from datetime import date\n\n"
     "d = date.fromisoformat('2024-03-01')\n", run(then="assert (d.year, d.month) == (2024, 3)\n")),
    ("add 30 days to a date", "from datetime import timedelta\n\nlater = d + timedelta(days=30)\n",
     run("from datetime import date\n\nd = date(2024, 1, 15)\n",
         "assert later == date(2024, 2, 14)\n")),
    ("measure how long a function takes to run",
     "import time\n\nstart = time.perf_counter()\nwork()\nprint(time.perf_counter() - start)\n",
     run("def work():\n    return sum(range(10000))\n")),
    ("read a json file into a dict",
     "import json\n\nwith open('config.json', encoding='utf-8') as f:\n    cfg = json.load(f)\n",
     run(then="assert cfg == {'debug': True, 'port': 8080}\n",
         files=(("config.json", '{"debug": true, "port": 8080}\n'),))),
    ("write a dict to a json file with indentation",
     "import json\n\nwith open('out.json', 'w', encoding='utf-8') as f:\n"
     "    json.dump(data, f, indent=2)\n",
     run("data = {'name': 'ada', 'tags': ['x']}\n",
         "assert json.load(open('out.json', encoding='utf-8')) == data\n")),
    ("read a text file line by line",
     "with open('notes.txt', encoding='utf-8') as f:\n    for line in f:\n"
     "        print(line.rstrip())\n",
     run(then="assert line.rstrip() == 'second line'\n",
         files=(("notes.txt", "first line\nsecond line\n"),))),
    ("append a line to a file", "with open('log.txt', 'a', encoding='utf-8') as f:\n"
     "    f.write('done\\n')\n",
     run(then="assert open('log.txt', encoding='utf-8').read() == 'started\\ndone\\n'\n",
         files=(("log.txt", "started\n"),))),
    ("check if a file exists", "from pathlib import Path\n\nif Path('data.csv').exists():\n"
     "    ...\n", run(files=(("data.csv", "a,b\n"),))),
    ("list every file in a directory", "from pathlib import Path\n\n"
     "names = [p.name for p in Path('.').iterdir() if p.is_file()]\n",
     run(then="assert sorted(names) == ['a.txt', 'b.csv']\n",
         files=(("a.txt", "x\n"), ("b.csv", "y\n"), ("sub/c.txt", "z\n")))),
    ("create a folder if it doesn't exist", "from pathlib import Path\n\n"
     "Path('out/plots').mkdir(parents=True, exist_ok=True)\n",
     run(then="assert Path('out/plots').is_dir()\n")),
    ("get the file extension from a path", "from pathlib import Path\n\n"
     "ext = Path('report.final.pdf').suffix  # '.pdf'\n", run(then="assert ext == '.pdf'\n")),
    ("run a shell command and capture its output", "import subprocess\n\n"
     "out = subprocess.run(['ls', '-l'], capture_output=True, text=True, check=True).stdout\n",
     run(then="assert 'notes.txt' in out\n", files=(("notes.txt", "x\n"),))),
    ("read command line arguments", "import sys\n\nargs = sys.argv[1:]\n",
     run(then="assert isinstance(args, list)\n")),
    ("read an environment variable with a default", "import os\n\n"
     "level = os.environ.get('LOG_LEVEL', 'INFO')\n",
     run(then="assert level == os.environ.get('LOG_LEVEL', 'INFO')\n")),
    ("make an http get request and parse the json response", "import requests\n\n"
     "resp = requests.get(url, timeout=10)\nresp.raise_for_status()\ndata = resp.json()\n",
     PyCheck(needs=("requests",), compile_only="network")),
    ("post json to an api with requests", "import requests\n\n"
     "requests.post(url, json={'name': 'x'}, timeout=10).raise_for_status()\n",
     PyCheck(needs=("requests",), compile_only="network")),
    ("download a file with urllib", "from urllib.request import urlretrieve\n\n"
     "urlretrieve(url, 'file.zip')\n", PyCheck(compile_only="network")),
    ("load a csv into a pandas dataframe", "import pandas as pd\n\ndf = pd.read_csv('sales.csv')\n",
     run(then="assert list(df.columns) == ['day', 'amount'] and len(df) == 2\n",
         files=(("sales.csv", "day,amount\n2024-01-01,10\n2024-01-02,25\n"),), needs=("pandas",))),
    ("filter rows of a pandas dataframe where a column is above a value",
     "big = df[df['amount'] > 100]\n",
     run("import pandas as pd\n\ndf = pd.DataFrame({'amount': [50, 150, 300]})\n",
         "assert big['amount'].tolist() == [150, 300]\n", needs=("pandas",))),
    ("drop rows with missing values in pandas", "df = df.dropna()\n",
     run("import pandas as pd\n\ndf = pd.DataFrame({'a': [1, None, 3], 'b': ['x', 'y', None]})\n",
         "assert len(df) == 1\n", needs=("pandas",))),
    ("rename columns of a dataframe", "df = df.rename(columns={'old': 'new'})\n",
     run("import pandas as pd\n\ndf = pd.DataFrame({'old': [1], 'keep': [2]})\n",
         "assert list(df.columns) == ['new', 'keep']\n", needs=("pandas",))),
    ("plot a line chart with matplotlib", "import matplotlib.pyplot as plt\n\n"
     "plt.plot(xs, ys)\nplt.xlabel('x')\nplt.show()\n",
     run("xs = [0, 1, 2]\nys = [0, 1, 4]\n", "plt.close('all')\n", needs=("matplotlib",))),
    ("create a numpy array of zeros", "import numpy as np\n\na = np.zeros((3, 4))\n",
     run(then="assert a.shape == (3, 4) and a.sum() == 0\n", needs=("numpy",))),
    ("get unique values of a list while keeping order", "unique = list(dict.fromkeys(items))\n",
     run("items = [3, 1, 3, 2, 1]\n", "assert unique == [3, 1, 2]\n")),
    ("swap two variables", "a, b = b, a\n", run("a, b = 1, 2\n", "assert (a, b) == (2, 1)\n")),
    ("loop over two lists at the same time", "for name, score in zip(names, scores):\n"
     "    print(name, score)\n",
     run("names = ['ada', 'bo']\nscores = [90, 85]\n", "assert (name, score) == ('bo', 85)\n")),
    ("loop with an index", "for i, item in enumerate(items):\n    print(i, item)\n",
     run("items = ['a', 'b', 'c']\n", "assert (i, item) == (2, 'c')\n")),
    ("invert a dictionary", "inverted = {v: k for k, v in d.items()}\n",
     run("d = {'a': 1, 'b': 2}\n", "assert inverted == {1: 'a', 2: 'b'}\n")),
    ("get a value from a dict without a KeyError", "value = d.get('key', default)\n",
     run("d = {'other': 1}\ndefault = 0\n", "assert value == 0\n")),
    ("count items with a defaultdict", "from collections import defaultdict\n\n"
     "counts = defaultdict(int)\nfor w in words:\n    counts[w] += 1\n",
     run("words = ['a', 'b', 'a']\n", "assert counts == {'a': 2, 'b': 1}\n")),
    ("remove an item from a list by value", "items.remove('b')  # first match only\n",
     run("items = ['a', 'b', 'c', 'b']\n", "assert items == ['a', 'c', 'b']\n")),
    ("remove whitespace from the start and end of a string", "clean = text.strip()\n",
     run("text = '  hi there \\n'\n", "assert clean == 'hi there'\n")),
    ("check if a string contains a substring", "if 'err' in line:\n    ...\n",
     run("line = 'stderr: disk full'\n")),
    ("replace all occurrences of a word in a string", "text = text.replace('cat', 'dog')\n",
     run("text = 'cat sat on the cat mat'\n", "assert text == 'dog sat on the dog mat'\n")),
    ("split a string on commas", "parts = [p.strip() for p in line.split(',')]\n",
     run("line = 'a, b,c'\n", "assert parts == ['a', 'b', 'c']\n")),
    ("join a list of strings with a separator", "line = ', '.join(names)\n",
     run("names = ['ada', 'bo']\n", "assert line == 'ada, bo'\n")),
    ("capitalize the first letter of each word", "title = text.title()\n",
     run("text = 'hello big world'\n", "assert title == 'Hello Big World'\n")),
    ("check if a number is prime", "def is_prime(n):\n    if n < 2:\n        return False\n"
     "    return all(n % d for d in range(2, int(n ** 0.5) + 1))\n",
     run(then="assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]\n")),
    ("compute a factorial", "import math\n\nprint(math.factorial(10))\n",
     run(then="assert math.factorial(10) == 3628800\n")),
    ("generate a random number between 1 and 10", "import random\n\nn = random.randint(1, 10)\n",
     run(then="assert 1 <= n <= 10\n")),
    ("pick a random item from a list", "import random\n\nchoice = random.choice(items)\n",
     run("items = ['a', 'b', 'c']\n", "assert choice in items\n")),
    ("shuffle a list", "import random\n\nrandom.shuffle(items)  # in place\n",
     run("items = [1, 2, 3, 4]\n", "assert sorted(items) == [1, 2, 3, 4]\n")),
    ("write a class with a constructor and a method", "class Counter:\n"
     "    def __init__(self, start=0):\n        self.value = start\n\n"
     "    def increment(self):\n        self.value += 1\n",
     run(then="_c = Counter(5)\n_c.increment()\nassert _c.value == 6\n")),
    ("define a dataclass", "from dataclasses import dataclass\n\n\n@dataclass\nclass Point:\n"
     "    x: float\n    y: float\n", run(then="assert Point(1, 2) == Point(x=1, y=2)\n")),
    ("write a decorator that logs function calls", "import functools\n\n\ndef logged(fn):\n"
     "    @functools.wraps(fn)\n    def wrapper(*args, **kwargs):\n"
     "        print('calling', fn.__name__)\n        return fn(*args, **kwargs)\n"
     "    return wrapper\n",
     run(then="@logged\ndef _add(a, b):\n    return a + b\n\n\n"
              "assert _add(2, 3) == 5 and _add.__name__ == '_add'\n")),
    ("cache the results of an expensive function", "from functools import lru_cache\n\n\n"
     "@lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
     run(then="assert fib(80) == 23416728348467685\n")),
    ("write a generator that yields numbers forever", "def naturals():\n    n = 0\n"
     "    while True:\n        yield n\n        n += 1\n",
     run(then="from itertools import islice as _islice\n\n"
              "assert list(_islice(naturals(), 4)) == [0, 1, 2, 3]\n")),
    ("raise a custom exception", "class ConfigError(Exception):\n    pass\n\n\n"
     "raise ConfigError('missing key: name')\n", run(raises="ConfigError")),
    ("use try except finally", "try:\n    f = open(path)\nexcept OSError as err:\n"
     "    print(err)\nelse:\n    f.close()\nfinally:\n    print('done')\n",
     run("path = 'missing.txt'\n")),
    ("set up logging to a file", "import logging\n\nlogging.basicConfig(filename='app.log', "
     "level=logging.INFO)\nlogging.info('started')\n",
     run(then="assert 'started' in open('app.log', encoding='utf-8').read()\n")),
    ("type hint a function that returns an optional string",
     "def find(name: str) -> str | None:\n    ...\n", run(then="assert find('x') is None\n")),
    ("write a lambda that squares a number", "square = lambda x: x * x\n",
     run(then="assert square(7) == 49\n")),
    ("use map and filter on a list", "evens = list(filter(lambda x: x % 2 == 0, nums))\n"
     "doubled = list(map(lambda x: 2 * x, nums))\n",
     run("nums = [1, 2, 3, 4]\n", "assert evens == [2, 4] and doubled == [2, 4, 6, 8]\n")),
    ("run two functions in parallel threads", "from concurrent.futures import ThreadPoolExecutor"
     "\n\nwith ThreadPoolExecutor() as pool:\n    a, b = pool.map(lambda f: f(), [job1, job2])\n",
     run("def job1():\n    return 1\n\n\ndef job2():\n    return 2\n", "assert (a, b) == (1, 2)\n")),
    ("sleep for two seconds", "import time\n\ntime.sleep(2)\n", run()),
    ("install a package with pip",
     "# In a terminal: python -m pip install requests\n"
     "# From a script, install into the interpreter that runs it:\n"
     "import subprocess\nimport sys\n\n"
     "subprocess.check_call([sys.executable, '-m', 'pip', 'install', 'requests'])\n",
     PyCheck(compile_only="network")),
    ("make a virtualenv and activate it",
     "# In a terminal:\n#   python -m venv .venv\n#   source .venv/bin/activate"
     "   (Windows: .venv\\Scripts\\activate)\n# Or create it from Python:\nimport venv\n\n"
     "venv.create('.venv', with_pip=True)\n", PyCheck(compile_only="slow")),
    ("write a unit test with pytest", "def test_add():\n    assert add(2, 3) == 5\n",
     run("def add(a, b):\n    return a + b\n", "test_add()\n")),
    ("mock a function in a test", "from unittest import mock\n\n"
     "with mock.patch('app.send_email') as send:\n    notify()\n    send.assert_called_once()\n",
     run("from app import notify\n", files=(("app.py", "def send_email():\n"
         "    raise RuntimeError('no mail from tests')\n\n\ndef notify():\n    send_email()\n"),))),
    ("pickle an object to disk", "import pickle\n\nwith open('model.pkl', 'wb') as f:\n"
     "    pickle.dump(obj, f)\n",
     run("obj = {'weights': [0.1, 0.2]}\n",
         "assert pickle.load(open('model.pkl', 'rb')) == obj\n")),
    ("deep copy a nested list", "import copy\n\nclone = copy.deepcopy(grid)\n",
     run("grid = [[1, 2], [3, 4]]\n", "clone[0][0] = 9\nassert grid[0][0] == 1\n")),
    ("find the index of an element in a list", "i = items.index('x')  # ValueError if absent\n",
     run("items = ['a', 'x', 'b']\n", "assert i == 1\n")),
    ("get the last element of a list", "last = items[-1]\n",
     run("items = [1, 2, 3]\n", "assert last == 3\n")),
    ("check the python version at runtime", "import sys\n\nprint(sys.version_info)\n",
     run(then="assert sys.version_info >= (3, 8)\n")),
    ("What does the yield keyword do?",
     "# `yield` makes the function a generator: each `yield` hands one value to the\n"
     "# caller and pauses until the next value is asked for.\ndef countdown(n):\n"
     "    while n > 0:\n        yield n\n        n -= 1\n\n\n"
     "print(list(countdown(3)))  # [3, 2, 1]\n",
     run(then="assert list(countdown(3)) == [3, 2, 1]\n")),
    ("What is the difference between == and is?",
     "# `==` compares values, `is` compares identity (the same object).\na = [1]\nb = [1]\n"
     "print(a == b)  # True\nprint(a is b)  # False\n",
     run(then="assert a == b and a is not b\n")),
    ("Why am I getting IndexError: list index out of range?",
     "# You read items[i] with i >= len(items). Loop over the items directly:\n"
     "for item in items:\n    print(item)\n# or check the index first:\nif i < len(items):\n"
     "    print(items[i])\n", run("items = ['a', 'b']\ni = 2\n")),
    ("What does *args and **kwargs mean in a function definition?",
     "# *args collects extra positional arguments as a tuple,\n"
     "# **kwargs extra keyword arguments as a dict.\ndef show(*args, **kwargs):\n"
     "    print(args, kwargs)\n\n\nshow(1, 2, color='red')  # (1, 2) {'color': 'red'}\n",
     run()),
    ("AttributeError: 'NoneType' object has no attribute 'append' - what am I doing wrong?",
     "# list.append (like list.sort) changes the list in place and returns None;\n"
     "# don't assign its result:\nitems.append(x)  # not items = items.append(x)\n",
     run("items = [1]\nx = 2\n", "assert items == [1, 2]\n")),
    ("ModuleNotFoundError: No module named 'numpy' even though I installed it",
     "# Install it for the interpreter you actually run, in a terminal:\n"
     "#   python -m pip install numpy\n# This prints which interpreter that is:\nimport sys\n\n"
     "print(sys.executable)\n", run()),
    ("How are lists different from sets?",
     "# A list keeps order and duplicates; a set is unordered, holds each value once\n"
     "# and tests membership in constant time.\nitems = [3, 1, 3]\nunique = set(items)\n"
     "print(items, unique)  # [3, 1, 3] {1, 3}\nprint(3 in unique)  # True\n",
     run(then="assert unique == {1, 3} and len(items) == 3\n")),
    ("What is a virtual environment and why use one?",
     "# An isolated Python install per project, so each project's packages and versions\n"
     "# don't clash. This tells whether the running interpreter is in one:\nimport sys\n\n"
     "in_venv = sys.prefix != sys.base_prefix\nprint(in_venv)\n",
     run(then="assert isinstance(in_venv, bool)\n")),
    ("Is Python pass-by-reference or pass-by-value?",
     "# Names are passed by object reference: mutating a list inside a function changes\n"
     "# it for the caller, rebinding the name does not.\ndef mutate(xs):\n    xs.append(1)\n\n\n"
     "def rebind(xs):\n    xs = [99]\n\n\nnums = []\nmutate(nums)\nrebind(nums)\n"
     "print(nums)  # [1]\n", run(then="assert nums == [1]\n")),
    ("What's a f-string?",
     "# A string literal with expressions in braces, evaluated at run time:\n"
     "name, age = 'Ada', 36\nprint(f'{name} is {age}')  # Ada is 36\n",
     run(then="assert f'{name} is {age}' == 'Ada is 36'\n")),
    ("KeyError when reading a dictionary, how to avoid it?",
     "value = d.get(key)  # None when the key is missing\n# or check first:\nif key in d:\n"
     "    value = d[key]\n", run("d = {'a': 1}\nkey = 'b'\n", "assert value is None\n")),
    ("my for loop over a dict only gives me keys", "for key, value in d.items():\n"
     "    print(key, value)\n", run("d = {'a': 1, 'b': 2}\n", "assert (key, value) == ('b', 2)\n")),
]

# Tables of the everyday SQL answers, with sample rows: ``db(name, ...)`` builds a check's
# setup from them.  A key is the table's name, or ``name:variant`` for another schema of
# the same table (people's ``orders`` tables differ).
TABLES = {
    "customers": "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
    "country TEXT, phone TEXT);\nINSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', "
    "'DE', NULL), (2, 'Bo', 'bo@mail.de', 'FR', '+33 1 23 45'), (3, 'Cleo', 'cleo@inbox.fr', "
    "'NL', NULL);\n",
    "users": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, country TEXT);\n"
    "INSERT INTO users VALUES (1, 'ada@example.com', 'DE'), (2, 'bo@mail.de', 'FR'), "
    "(3, 'cleo@inbox.fr', 'US');\n",
    "orders": "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total NUMERIC(10,2), "
    "status TEXT, placed_at DATE);\nINSERT INTO orders VALUES (1, 1, 25.50, 'new', '2023-11-02'), "
    "(2, 1, 99.00, 'paid', '2024-02-10'), (3, 2, 12.00, 'shipped', '2024-03-05'), "
    "(4, 3, 250.00, 'paid', '2023-12-24'), (5, 7, 40.00, 'new', '2024-04-01');\n",
    "orders:clients": "CREATE TABLE orders (id INTEGER PRIMARY KEY, client_id INTEGER, "
    "product_id INTEGER, total NUMERIC(10,2));\nINSERT INTO orders VALUES (1, 1, 2, 30.00), "
    "(2, 1, 1, 12.50), (3, 2, 2, 30.00);\n",
    "clients": "CREATE TABLE clients (id INTEGER PRIMARY KEY, name TEXT, email TEXT);\n"
    "INSERT INTO clients VALUES (1, 'Acme', 'buy@acme.io'), (2, 'Globex', 'it@globex.com'), "
    "(3, 'Initech', 'hello@initech.com');\n",
    "products": "CREATE TABLE products (id INTEGER PRIMARY KEY, title TEXT, price NUMERIC(10,2));\n"
    "INSERT INTO products VALUES (1, 'Mug', 12.50), (2, 'Lamp', 30.00);\n",
    "employees": "CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, salary "
    "NUMERIC(12,2));\nINSERT INTO employees VALUES (1, 'Ada', 91000), (2, 'Bo', 64000), "
    "(3, 'Cleo', 64000), (4, 'Dev', 52000), (5, 'Eva', 48000);\n",
    "staff": "CREATE TABLE staff (id INTEGER PRIMARY KEY, name TEXT, dept TEXT, pay NUMERIC(12,2), "
    "manager_id INTEGER, hired_on DATE);\nINSERT INTO staff VALUES (1, 'Ada', 'eng', 120000, "
    "NULL, '2019-04-01'), (2, 'Bo', 'eng', 90000, 1, '2021-09-15'), (3, 'Cleo', 'sales', 70000, "
    "1, '2022-01-10'), (4, 'Dev', 'sales', 65000, 3, '2023-06-30');\n",
    "tags": "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE);\n",
    "stock": "CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);\n"
    "INSERT INTO stock VALUES ('A1', 2), ('B7', 10);\n",
    "archive_orders": "CREATE TABLE archive_orders (id INTEGER PRIMARY KEY, user_id INTEGER, "
    "total NUMERIC(10,2), status TEXT, placed_at DATE);\n",
    "staging_events": "CREATE TABLE staging_events (id INTEGER PRIMARY KEY, kind TEXT, "
    "payload TEXT);\nINSERT INTO staging_events VALUES (1, 'click', '{}'), (2, 'view', '{}');\n",
    "old_logs": "CREATE TABLE old_logs (id INTEGER PRIMARY KEY, line TEXT);\n",
    "members": "CREATE TABLE members (id INTEGER PRIMARY KEY, name TEXT, nickname TEXT);\n"
    "INSERT INTO members VALUES (1, 'Robert', 'Bob'), (2, 'Alice', NULL);\n",
    "people": "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, first_name TEXT, "
    "last_name TEXT, city TEXT, born_on DATE);\nINSERT INTO people VALUES (1, 'Anna Berg', "
    "'Anna', 'Berg', 'Berlin', '1990-05-17'), (2, 'Ben Ito', 'Ben', 'Ito', 'BERLIN', "
    "'1985-11-02'), (3, 'Alan Roy', 'Alan', 'Roy', 'Lyon', '2001-01-30');\n",
    "payments": "CREATE TABLE payments (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), paid_at "
    "DATE);\nINSERT INTO payments VALUES (1, 20, '2023-12-30'), (2, 35, '2024-01-04'), "
    "(3, 12, '2024-01-31'), (4, 50, '2024-02-02');\n",
    "signups": "CREATE TABLE signups (id INTEGER PRIMARY KEY, email TEXT, created_at TIMESTAMP);\n"
    "INSERT INTO signups VALUES (1, 'a@x.io', '2024-01-03 10:00:00'), (2, 'b@x.io', "
    "'2024-01-20 08:30:00'), (3, 'c@x.io', '2024-02-11 19:45:00');\n",
    "revenue": "CREATE TABLE revenue (day DATE PRIMARY KEY, amount NUMERIC(10,2));\n"
    "INSERT INTO revenue VALUES ('2024-03-01', 100), ('2024-03-02', 80), ('2024-03-03', 120);\n",
    "traffic": "CREATE TABLE traffic (day DATE PRIMARY KEY, visits INTEGER);\nWITH RECURSIVE "
    "n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 9)\nINSERT INTO traffic "
    "SELECT date('2024-05-01', '+' || i || ' days'), 100 + 7 * i % 30 FROM n;\n",
    "sales": "CREATE TABLE sales (id INTEGER PRIMARY KEY, region TEXT, quarter INTEGER, revenue "
    "NUMERIC(12,2));\nINSERT INTO sales VALUES (1, 'EU', 1, 500), (2, 'EU', 2, 650), "
    "(3, 'US', 1, 900), (4, 'US', 2, 720);\n",
    "issues": "CREATE TABLE issues (id INTEGER PRIMARY KEY, title TEXT, status TEXT);\n"
    "INSERT INTO issues VALUES (1, 'crash', 'open'), (2, 'typo', 'closed'), (3, 'slow', "
    "'open');\n",
    "items": "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, category TEXT);\n"
    "INSERT INTO items VALUES (1, 'pen', 'office'), (2, 'desk', 'office'), (3, 'tent', "
    "'outdoor');\n",
    "posts": "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, created_at DATE);\n"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)\n"
    "INSERT INTO posts (title, created_at) SELECT 'Post ' || i, date('2024-01-01', '+' || i "
    "|| ' days') FROM n;\n",
    "leads": "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT);\nINSERT INTO leads VALUES "
    "(1, 'buy@acme.io'), (2, 'new@lead.com');\n",
    "table_a": "CREATE TABLE table_a (id INTEGER PRIMARY KEY);\nINSERT INTO table_a VALUES (1), "
    "(2), (3);\n",
    "table_b": "CREATE TABLE table_b (id INTEGER PRIMARY KEY);\nINSERT INTO table_b VALUES (2);\n",
    "players": "CREATE TABLE players (id INTEGER PRIMARY KEY, name TEXT, team TEXT);\n"
    "INSERT INTO players VALUES (1, 'Ana', 'red'), (2, 'Li', 'red'), (3, 'Omar', 'blue');\n",
    "results": "CREATE TABLE results (id INTEGER PRIMARY KEY, student TEXT, score REAL);\n"
    "INSERT INTO results VALUES (1, 'ana', 81.5), (2, 'li', 77.25), (3, 'omar', 90);\n",
    "pings": "CREATE TABLE pings (id INTEGER PRIMARY KEY, device_id TEXT, seen_at TIMESTAMP);\n"
    "INSERT INTO pings VALUES (1, 'd1', '2024-06-01 10:00:00'), (2, 'd1', '2024-06-02 09:00:00'), "
    "(3, 'd2', '2024-06-01 12:00:00');\n",
    "nodes": "CREATE TABLE nodes (id INTEGER PRIMARY KEY, parent_id INTEGER);\nINSERT INTO nodes "
    "VALUES (1, NULL), (2, 1), (3, 1), (4, 2), (5, NULL);\n",
    "wallets": "CREATE TABLE wallets (id INTEGER PRIMARY KEY, owner TEXT, balance NUMERIC(12,2));\n"
    "INSERT INTO wallets VALUES (1, 'ada', 120), (2, 'bo', 10);\n",
    "carts": "CREATE TABLE carts (id INTEGER PRIMARY KEY, user_id INTEGER, item TEXT);\n"
    "INSERT INTO carts VALUES (1, 1, 'mug'), (2, 2, 'lamp');\n",
    "sessions": "CREATE TABLE sessions (id INTEGER PRIMARY KEY, user_id INTEGER, seen_at "
    "TIMESTAMP);\nINSERT INTO sessions VALUES (1, 1, '2024-01-05 10:00:00');\n",
    "docs": "CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body TEXT, updated_at "
    "TIMESTAMP);\nINSERT INTO docs VALUES (1, 'intro', 'hello', '2024-01-01 00:00:00');\n",
    "webhooks": "CREATE TABLE webhooks (id INTEGER PRIMARY KEY, payload TEXT);\nINSERT INTO "
    "webhooks VALUES (1, '{\"event\": \"charge\", \"source\": \"stripe\"}'), "
    "(2, '{\"event\": \"push\", \"source\": \"github\"}');\n",
    "visitors": "CREATE TABLE visitors (id INTEGER PRIMARY KEY, country TEXT);\nINSERT INTO "
    "visitors VALUES (1, 'DE'), (2, 'JP'), (3, 'BR');\n",
    "receipts": "CREATE TABLE receipts (id INTEGER PRIMARY KEY, customer_id INTEGER, shop TEXT, "
    "total NUMERIC(10,2), paid_at DATE);\nWITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT "
    "i + 1 FROM n WHERE i < 35)\nINSERT INTO receipts (customer_id, shop, total, paid_at)\n"
    "SELECT i % 3 + 1, CASE WHEN i % 2 = 0 THEN 'north' ELSE 'south' END, 5 + i, "
    "date('2024-01-15', '+' || (i / 3) || ' months') FROM n;\n",
    "listings": "CREATE TABLE listings (id INTEGER PRIMARY KEY, title TEXT, price NUMERIC(10,2));\n"
    "INSERT INTO listings VALUES (1, 'flat', 900), (2, 'loft', 1450), (3, 'room', 420);\n",
}


def db(*names: str, extra: str = "", expect: str = "auto", after: str = "") -> SqlCheck:
    """A SQL answer's check: the named ``TABLES`` with their rows, then ``extra``."""
    return SqlCheck("".join(TABLES[n] for n in names) + extra, expect, after)


def has(kind: str, name: str) -> str:
    """An ``after`` query: the schema has an object (table, index, view, trigger) ``name``."""
    return f"SELECT 1 FROM sqlite_master WHERE type = '{kind}' AND name = '{name}'"


SQL = [
    ("select all columns from a table", "SELECT * FROM customers;\n", db("customers")),
    ("count the rows in a table", "SELECT COUNT(*) FROM orders;\n", db("orders")),
    ("find duplicate emails in the users table", "SELECT email, COUNT(*)\nFROM users\n"
     "GROUP BY email\nHAVING COUNT(*) > 1;\n",
     db("users", extra="INSERT INTO users VALUES (4, 'bo@mail.de', 'DE');\n")),
    ("delete duplicate rows but keep one", "DELETE FROM users\nWHERE id NOT IN (\n"
     "    SELECT MIN(id) FROM users GROUP BY email\n);\n",
     db("users", extra="INSERT INTO users VALUES (4, 'bo@mail.de', 'DE');\n",
        after="SELECT 1 WHERE (SELECT COUNT(*) FROM users) = 3")),
    ("get the nth highest salary", "SELECT DISTINCT salary\nFROM employees\n"
     "ORDER BY salary DESC\nLIMIT 1 OFFSET 2;\n", db("employees")),
    ("add a column to an existing table", "ALTER TABLE users ADD COLUMN phone TEXT;\n",
     db("users", after="SELECT 1 FROM pragma_table_info('users') WHERE name = 'phone'")),
    ("rename a column", "ALTER TABLE users RENAME COLUMN phone TO phone_number;\n",
     db("users", extra="ALTER TABLE users ADD COLUMN phone TEXT;\n",
        after="SELECT 1 FROM pragma_table_info('users') WHERE name = 'phone_number'")),
    ("drop a column", "ALTER TABLE users DROP COLUMN legacy_flag;\n",
     db("users", extra="ALTER TABLE users ADD COLUMN legacy_flag INTEGER;\n",
        after="SELECT 1 WHERE (SELECT COUNT(*) FROM pragma_table_info('users')) = 3")),
    ("change the type of a column",
     "-- SQLite cannot change a column's type in place: rebuild the table.\n"
     "CREATE TABLE orders_new (\n    id INTEGER PRIMARY KEY,\n    user_id INTEGER,\n"
     "    total NUMERIC(12,2),\n    status TEXT,\n    placed_at DATE\n);\n"
     "INSERT INTO orders_new SELECT id, user_id, total, status, placed_at FROM orders;\n"
     "DROP TABLE orders;\nALTER TABLE orders_new RENAME TO orders;\n",
     db("orders", after="SELECT 1 FROM pragma_table_info('orders') WHERE name = 'total' "
        "AND type = 'NUMERIC(12,2)'")),
    ("add a foreign key constraint",
     "-- SQLite declares foreign keys in CREATE TABLE (and checks them once enabled):\n"
     "PRAGMA foreign_keys = ON;\nCREATE TABLE orders (\n    id INTEGER PRIMARY KEY,\n"
     "    user_id INTEGER NOT NULL REFERENCES users(id),\n    total NUMERIC(10,2)\n);\n",
     db("users", after="SELECT 1 FROM pragma_foreign_key_list('orders') WHERE \"table\" = 'users'")),
    ("make a column unique", "CREATE UNIQUE INDEX users_email_key ON users (email);\n",
     db("users", after=has("index", "users_email_key"))),
    ("set a default value on a column",
     "-- SQLite sets defaults in CREATE TABLE; ALTER TABLE cannot change them later.\n"
     "CREATE TABLE tasks (\n    id INTEGER PRIMARY KEY,\n    title TEXT NOT NULL,\n"
     "    status TEXT NOT NULL DEFAULT 'new'\n);\n",
     db(after="SELECT 1 FROM pragma_table_info('tasks') WHERE dflt_value = '''new'''")),
    ("create a table with an auto increment primary key", "CREATE TABLE notes (\n"
     "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    body TEXT NOT NULL\n);\n",
     db(after=has("table", "notes"))),
    ("insert several rows at once", "INSERT INTO tags (name) VALUES ('red'), ('green'), "
     "('blue');\n", db("tags")),
    ("insert or update when the row already exists", "INSERT INTO stock (sku, qty)\n"
     "VALUES ('A1', 5)\nON CONFLICT (sku) DO UPDATE SET qty = EXCLUDED.qty;\n",
     db("stock", after="SELECT 1 FROM stock WHERE sku = 'A1' AND qty = 5")),
    ("copy rows from one table into another", "INSERT INTO archive_orders\n"
     "SELECT * FROM orders WHERE placed_at < '2024-01-01';\n", db("orders", "archive_orders")),
    ("update rows using values from another table", "UPDATE orders AS o\n"
     "SET country = u.country\nFROM users AS u\nWHERE o.user_id = u.id;\n",
     db("orders", "users", extra="ALTER TABLE orders ADD COLUMN country TEXT;\n")),
    ("empty a table", "-- SQLite has no TRUNCATE; a DELETE without WHERE empties the table.\n"
     "DELETE FROM staging_events;\n", db("staging_events")),
    ("remove a table", "DROP TABLE IF EXISTS old_logs;\n",
     db("old_logs", after="SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM sqlite_master "
        "WHERE name = 'old_logs')")),
    ("rows where a column is null", "SELECT * FROM customers WHERE phone IS NULL;\n",
     db("customers")),
    ("show a default when the value is null", "SELECT name, COALESCE(nickname, name) AS shown\n"
     "FROM members;\n", db("members")),
    ("filter with LIKE for names starting with A", "SELECT * FROM people WHERE name LIKE 'A%';\n",
     db("people")),
    ("match rows against a list of values", "SELECT * FROM orders WHERE status IN ('new', "
     "'paid');\n", db("orders")),
    ("select rows between two dates", "SELECT * FROM payments\n"
     "WHERE paid_at BETWEEN '2024-01-01' AND '2024-01-31';\n", db("payments")),
    ("group by month and count", "SELECT strftime('%Y-%m', created_at) AS month, COUNT(*)\n"
     "FROM signups\nGROUP BY month\nORDER BY month;\n", db("signups")),
    ("extract the year from a date column",
     "SELECT CAST(strftime('%Y', hired_on) AS INTEGER) AS year\nFROM staff;\n", db("staff")),
    ("calculate the age from a birth date", "SELECT name,\n"
     "       CAST(strftime('%Y', 'now') AS INTEGER) - CAST(strftime('%Y', born_on) AS INTEGER)\n"
     "       - (strftime('%m-%d', 'now') < strftime('%m-%d', born_on)) AS age\nFROM people;\n",
     db("people")),
    ("left join two tables and keep rows without a match", "SELECT c.name, o.id\n"
     "FROM clients c\nLEFT JOIN orders o ON o.client_id = c.id;\n",
     db("clients", "orders:clients")),
    ("join three tables", "SELECT o.id, c.name, p.title\nFROM orders o\n"
     "JOIN clients c ON c.id = o.client_id\nJOIN products p ON p.id = o.product_id;\n",
     db("orders:clients", "clients", "products")),
    ("self join to list employees with their managers", "SELECT e.name, m.name AS manager\n"
     "FROM staff e\nLEFT JOIN staff m ON m.id = e.manager_id;\n", db("staff")),
    ("find customers with no orders", "SELECT c.*\nFROM clients c\n"
     "WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.client_id = c.id);\n",
     db("clients", "orders:clients")),
    ("a cumulative sum over time", "SELECT day, amount,\n"
     "       SUM(amount) OVER (ORDER BY day) AS running_total\nFROM revenue;\n", db("revenue")),
    ("rank rows within each group", "SELECT dept, name,\n"
     "       RANK() OVER (PARTITION BY dept ORDER BY pay DESC) AS rnk\nFROM staff;\n",
     db("staff")),
    ("compare each row with the previous one", "SELECT day, visits,\n"
     "       visits - LAG(visits) OVER (ORDER BY day) AS change\nFROM traffic;\n", db("traffic")),
    ("a moving average over 7 days", "SELECT day, AVG(visits) OVER (ORDER BY day ROWS "
     "BETWEEN 6 PRECEDING AND CURRENT ROW)\nFROM traffic;\n", db("traffic")),
    ("pivot rows into columns with CASE", "SELECT region,\n"
     "       SUM(CASE WHEN quarter = 1 THEN revenue END) AS q1,\n"
     "       SUM(CASE WHEN quarter = 2 THEN revenue END) AS q2\nFROM sales\nGROUP BY region;\n",
     db("sales")),
    ("conditional counting in one query", "SELECT COUNT(*) FILTER (WHERE status = 'open') AS "
     "open,\n       COUNT(*) FILTER (WHERE status = 'closed') AS closed\nFROM issues;\n",
     db("issues")),
    ("the share of each category in percent", "SELECT category,\n"
     "       100.0 * COUNT(*) / SUM(COUNT(*)) OVER () AS pct\nFROM items\nGROUP BY category;\n",
     db("items")),
    ("page through results 20 at a time", "SELECT * FROM posts\nORDER BY created_at DESC\n"
     "LIMIT 20 OFFSET 40;\n", db("posts")),
    ("union two result sets without duplicates", "SELECT email FROM leads\nUNION\n"
     "SELECT email FROM clients;\n", db("leads", "clients")),
    ("rows in one table but not the other", "SELECT id FROM table_a\nEXCEPT\n"
     "SELECT id FROM table_b;\n", db("table_a", "table_b")),
    ("string concatenation of two columns", "SELECT first_name || ' ' || last_name AS "
     "full_name\nFROM people;\n", db("people")),
    ("aggregate strings into a comma separated list", "SELECT team, GROUP_CONCAT(name, ', ')\n"
     "FROM players\nGROUP BY team;\n", db("players")),
    ("case insensitive match", "SELECT * FROM people WHERE LOWER(city) = 'berlin';\n",
     db("people")),
    ("round an average to two decimals", "SELECT ROUND(AVG(score), 2) FROM results;\n",
     db("results")),
    ("the latest row per group", "SELECT *\nFROM (\n    SELECT p.*, ROW_NUMBER() OVER (\n"
     "        PARTITION BY device_id ORDER BY seen_at DESC) AS rn\n    FROM pings p\n)\n"
     "WHERE rn = 1;\n", db("pings")),
    ("a recursive query over a parent child tree", "WITH RECURSIVE tree AS (\n"
     "    SELECT id, parent_id FROM nodes WHERE id = 1\n    UNION ALL\n"
     "    SELECT n.id, n.parent_id FROM nodes n JOIN tree t ON n.parent_id = t.id\n)\n"
     "SELECT * FROM tree;\n", db("nodes")),
    ("create a view", "CREATE VIEW paid_orders AS\nSELECT * FROM orders WHERE status = 'paid';\n",
     db("orders", after="SELECT 1 FROM paid_orders")),
    ("create an index to speed up a slow query", "CREATE INDEX idx_orders_user ON orders "
     "(user_id);\n", db("orders", after=has("index", "idx_orders_user"))),
    ("see the query plan", "EXPLAIN QUERY PLAN\nSELECT * FROM orders WHERE user_id = 7;\n",
     db("orders")),
    ("wrap two updates in a transaction", "BEGIN;\nUPDATE wallets SET balance = balance - 50 "
     "WHERE id = 1;\nUPDATE wallets SET balance = balance + 50 WHERE id = 2;\nCOMMIT;\n",
     db("wallets", after="SELECT 1 FROM wallets WHERE id = 2 AND balance = 60")),
    ("undo changes with rollback", "BEGIN;\nDELETE FROM carts;\nROLLBACK;\n",
     db("carts", after="SELECT 1 WHERE (SELECT COUNT(*) FROM carts) = 2")),
    ("create a view that only shows some columns", "CREATE VIEW customer_directory AS\n"
     "SELECT id, name, country FROM customers;\n",
     db("customers", after="SELECT 1 FROM customer_directory")),
    ("make sure a number column can never be negative", "CREATE TABLE stock_levels (\n"
     "    sku TEXT PRIMARY KEY,\n    qty INTEGER NOT NULL CHECK (qty >= 0)\n);\n",
     db(after=has("table", "stock_levels"))),
    ("list all tables in the database", "SELECT name\nFROM sqlite_master\n"
     "WHERE type = 'table'\nORDER BY name;\n", db("customers", "orders")),
    ("describe the columns of a table", "SELECT name, type\nFROM pragma_table_info('orders');\n",
     db("orders")),
    ("delete old rows automatically whenever new ones are inserted",
     "CREATE TRIGGER prune_sessions\nAFTER INSERT ON sessions\nBEGIN\n"
     "    DELETE FROM sessions WHERE seen_at < datetime('now', '-30 days');\nEND;\n",
     db("sessions", after=has("trigger", "prune_sessions"))),
    ("a trigger that sets updated_at", "CREATE TRIGGER touch_docs\nAFTER UPDATE ON docs\n"
     "FOR EACH ROW\nBEGIN\n    UPDATE docs SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;\n"
     "END;\n", db("docs", after=has("trigger", "touch_docs"))),
    ("query a json column", "SELECT json_extract(payload, '$.event') AS event\nFROM webhooks\n"
     "WHERE json_extract(payload, '$.source') = 'stripe';\n", db("webhooks")),
    ("random sample of rows", "SELECT * FROM visitors ORDER BY random() LIMIT 100;\n",
     db("visitors")),
    ("average per group only for big groups", "SELECT shop, AVG(total)\nFROM receipts\n"
     "GROUP BY shop\nHAVING COUNT(*) >= 10;\n", db("receipts")),
    ("distinct count of values", "SELECT COUNT(DISTINCT customer_id) FROM receipts;\n",
     db("receipts")),
    ("min and max in one query", "SELECT MIN(price), MAX(price) FROM listings;\n",
     db("listings")),
    ("customers who bought in every month of 2024", "SELECT customer_id\nFROM receipts\n"
     "WHERE paid_at >= '2024-01-01' AND paid_at < '2025-01-01'\nGROUP BY customer_id\n"
     "HAVING COUNT(DISTINCT strftime('%m', paid_at)) = 12;\n", db("receipts")),
    ("back up a table before changing it", "CREATE TABLE orders_backup AS\n"
     "SELECT * FROM orders;\n", db("orders", after="SELECT 1 FROM orders_backup")),
    ("What is the difference between INNER JOIN and LEFT JOIN?",
     "-- INNER JOIN keeps only rows with a match on both sides; LEFT JOIN keeps every\n"
     "-- row of the left table and fills missing right-hand columns with NULL.\n"
     "SELECT c.name, o.id AS order_id\nFROM clients c\nLEFT JOIN orders o ON o.client_id = c.id;\n",
     db("clients", "orders:clients")),
    ("What does GROUP BY do?",
     "-- It folds rows with equal values in the listed columns into one row, so\n"
     "-- aggregates such as COUNT or SUM are computed per group:\n"
     "SELECT status, COUNT(*) AS n, SUM(total) AS revenue\nFROM orders\nGROUP BY status;\n",
     db("orders")),
    ("Why does my query say column must appear in the GROUP BY clause?",
     "-- Every selected column must be grouped or aggregated:\n"
     "SELECT dept, MAX(pay) FROM staff GROUP BY dept;\n", db("staff")),
    ("sqlite3.IntegrityError: UNIQUE constraint failed: users.email",
     "-- A row with that email already exists: skip it, or update the existing row.\n"
     "INSERT INTO users (email, country) VALUES ('ada@example.com', 'DE')\n"
     "ON CONFLICT (email) DO NOTHING;\n",
     db("users", extra="CREATE UNIQUE INDEX users_email ON users (email);\n", expect="ok",
        after="SELECT 1 WHERE (SELECT COUNT(*) FROM users) = 3")),
    ("What is a primary key?",
     "-- A column (or columns) whose value identifies each row: unique and never NULL.\n"
     "CREATE TABLE countries (\n    code TEXT PRIMARY KEY,\n    name TEXT NOT NULL\n);\n",
     db(after=has("table", "countries"))),
    ("When should I normalize a schema?",
     "-- When the same fact is stored in several rows: move it into its own table and\n"
     "-- reference it by key, so an update happens in one place.\n"
     "CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT UNIQUE);\n"
     "CREATE TABLE shops (\n    id INTEGER PRIMARY KEY,\n    name TEXT,\n"
     "    city_id INTEGER REFERENCES cities(id)\n);\n", db(after=has("table", "shops"))),
    ("is COUNT(*) slower than COUNT(id)?",
     "-- No: COUNT(*) counts rows, COUNT(col) counts non-NULL values of col, and both\n"
     "-- scan the same rows.\nSELECT COUNT(*) AS all_rows, COUNT(phone) AS with_phone\n"
     "FROM customers;\n", db("customers")),
    ("Why is NULL = NULL not true?",
     "-- NULL means unknown, so a comparison with it is unknown too (never true);\n"
     "-- test with IS NULL, or IS, which treats two NULLs as equal:\n"
     "SELECT name FROM members WHERE nickname IS NULL;  -- not: nickname = NULL\n",
     db("members")),
    ("What's the difference between DELETE and TRUNCATE?",
     "-- DELETE removes matching rows and can have a WHERE; TRUNCATE (PostgreSQL, MySQL)\n"
     "-- empties a whole table at once. SQLite has only DELETE, and a DELETE without\n"
     "-- WHERE is optimized into the same fast truncate:\n"
     "DELETE FROM carts WHERE user_id = 2;\nDELETE FROM carts;\n", db("carts")),
    ("my join returns way too many rows",
     "-- A join key is not unique on one side. Find the duplicated keys:\n"
     "SELECT client_id, COUNT(*)\nFROM orders\nGROUP BY client_id\nHAVING COUNT(*) > 1;\n",
     db("orders:clients")),
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
ADJECTIVES = {"price": "most expensive", "total": "largest", "salary": "best paid",
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



def things_check(table: str, col: str, then: str) -> PyCheck:
    """Fixture of the records requests: a list ``table`` of dicts with ``name`` and ``col``."""
    rows = [{"name": n, col: v} for n, v in zip("abcd", [3, 7, 5, 7], strict=True)]
    return PyCheck(given=f"{table} = {rows!r}\nthreshold = 4\n", then=then)


def sql_top(rng: random.Random) -> tuple[str, str, SqlCheck]:
    """An everyday ranking question about some table."""
    table, col = rng.choice(THINGS)
    n = rng.choice([3, 5, 10, 20])
    setup = (f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, {col} REAL);\n"
             f"INSERT INTO {table} (name, {col}) VALUES ('a', 3), ('b', 7), ('c', 5);\n")
    ask = rng.choice([f"show me the {n} {ADJECTIVES[col]} {table}",
                      f"which {n} {table} have the highest {col.replace('_', ' ')}",
                      f"top {n} {table} by {col} in the database",
                      f"list {table} from the table sorted by {col}, biggest first"])
    limit = "" if ask.startswith("list") else f"\nLIMIT {n}"
    return ask, f"SELECT *\nFROM {table}\nORDER BY {col} DESC{limit};\n", SqlCheck(setup)


def python_with_table_words(rng: random.Random) -> tuple[str, str, PyCheck]:
    """A python request about records: words like 'table' alone must not decide."""
    table, col = rng.choice(THINGS)
    kind = rng.randrange(4)
    if kind == 0:
        return (f"sort a list of {table} dicts by {col} in python",
                f"{table}.sort(key=lambda r: r['{col}'])\n",
                things_check(table, col, f"assert [r['{col}'] for r in {table}] == [3, 5, 7, 7]\n"))
    if kind == 1:
        return (f"write a python function that returns the {table} with the highest {col} from "
                f"a list", f"def highest_{col}(rows):\n    return max(rows, key=lambda r: r['{col}'])\n",
                things_check(table, col, f"assert highest_{col}({table})['name'] == 'b'\n"))
    if kind == 2:
        return (f"group a list of {table} by {col.replace('_', ' ')} with itertools",
                f"from itertools import groupby\n\n\ndef by_{col}(r):\n    return r['{col}']\n\n\n"
                f"groups = {{k: list(g) for k, g in groupby(sorted({table}, key=by_{col}), "
                f"key=by_{col})}}\n",
                things_check(table, col, "assert [len(g) for g in groups.values()] == [1, 1, 2]\n"))
    return (f"filter a list of {table} dicts where {col} is above a threshold",
            f"above = [r for r in {table} if r['{col}'] > threshold]\n",
            things_check(table, col, "assert [r['name'] for r in above] == ['b', 'c', 'd']\n"))


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


def mention_schema(text: str, setup: str, rng: random.Random) -> str:
    """``text`` with the tables of ``setup`` named after it, as people paste them."""
    sigs = [f"{name}({', '.join(cols)})" for name, cols in describe_tables(setup)]
    listed = " and ".join(sigs)
    form = rng.choice([" (table: {s})", "\ntables: {s}", " - my table looks like {s}",
                       "\n\nI have {s}", "\nschema: {s}"])
    return text + form.format(s=listed)


def everyday(domain: str, rng: random.Random) -> tuple[str, str, SqlCheck | PyCheck | None]:
    """A random everyday request of ``domain``, its answer and its check."""
    if rng.random() < 0.15:
        request, answer, *check = rng.choice(PARAMETRIC[domain])(rng)
    else:
        request, answer, *check = rng.choice(BANKS[domain])
    text = phrase(request, domain, rng)
    chk = check[0] if check else None
    if (domain == "sql" and is_phrase(request) and 0 < len(describe_tables(chk.setup)) <= 2
            and rng.random() < SCHEMA_MENTION):
        text = mention_schema(text, chk.setup, rng)
    return text, answer, chk
