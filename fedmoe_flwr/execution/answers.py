"""Find the code in a language model's answer.

Models wrap code in Markdown fences, put prose before and after it, indent
the fence inside a list item, answer with CRLF line endings, forget the
closing fence, or answer with bare code.  :func:`extract_code` takes the first
fenced block (the rest of the answer when its fence is never closed), else
the whole answer; :func:`first_statement` cuts the first SQL statement out of
a script with sqlite's own tokenizer, so semicolons inside strings, quoted
identifiers and comments do not split it.
"""

from __future__ import annotations

import re
import sqlite3
import textwrap

OPENING = re.compile(r"(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)")
LANGUAGES = {
    "python": frozenset({"python", "py", "python3", "py3", "pycon", "ipython"}),
    "sql": frozenset({"sql", "sqlite", "sqlite3", "postgresql", "postgres", "psql", "mysql",
                      "plsql", "tsql", "pgsql", "mssql", "mariadb"}),
}
KNOWN_TAGS = LANGUAGES["python"] | LANGUAGES["sql"]
SQL_START = re.compile(r"\s*(SELECT|WITH|VALUES|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|"
                       r"PRAGMA|EXPLAIN)\b", re.IGNORECASE)


def _normalize(answer: str) -> str:
    """LF line endings, no byte-order mark, non-breaking spaces in indentation made spaces."""
    text = str(answer or "").replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    return re.sub(r"(?m)^[ \t\u00a0]+", lambda m: m.group(0).replace("\u00a0", " "), text)


def _tidy(lines: list[str]) -> str:
    """Drop blank lines at both ends and the common indentation."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return textwrap.dedent("\n".join(lines))


def _unindent(line: str, indent: str) -> str:
    """Remove up to the opening fence's indentation (CommonMark) from a content line."""
    width = len(indent)
    stripped = line[:width].lstrip(" \t")
    return stripped + line[width:] if not line.startswith(indent) else line[width:]


def _blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block as (language tag in lower case or "", code)."""
    lines, blocks, i = text.split("\n"), [], 0
    while i < len(lines):
        match = OPENING.fullmatch(lines[i])
        i += 1
        if match is None:
            continue
        fence, info, indent = match["fence"], match["info"].strip(), match["indent"]
        if fence[0] == "`" and "`" in info:  # not a fence (CommonMark), unless ```code``` inline
            inline = re.fullmatch(r"([^`]*?)\s*`{3,}", info)
            if inline is not None:
                tag, code = "", inline[1].strip()
                first, _, rest = code.partition(" ")
                if first.lower() in KNOWN_TAGS and rest.strip():
                    tag, code = first.lower(), rest.strip()
                blocks.append((tag, code))
            continue
        closing = re.compile(rf"[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*")
        body: list[str] = []
        while i < len(lines) and closing.fullmatch(lines[i]) is None:
            body.append(_unindent(lines[i], indent))
            i += 1
        i += 1  # the closing fence (or past the end: an unclosed block runs to the end)
        tag = info.split()[0].strip("{}.").lower() if info else ""
        blocks.append((tag, _tidy(body)))
    return blocks


def extract_code(answer: str, prefer: str | None = None) -> str:
    """The code of an answer: its first non-empty fenced block, else the whole answer.

    Parameters
    ----------
    answer : str
        The model's reply (Markdown or bare code).
    prefer : {"python", "sql"}, optional
        Skip blocks tagged with another language (a ```bash install line, a
        ```text output) in favour of the first block tagged with this one or
        untagged; when every block has another tag, the first block wins.

    Returns
    -------
    str
        The code with LF line endings and its common indentation removed
        ("" when the answer is empty).
    """
    text = _normalize(answer)
    blocks = [(tag, code) for tag, code in _blocks(text) if code.strip()]
    if blocks:
        if prefer is not None:
            wanted = LANGUAGES.get(prefer, frozenset({prefer}))
            for tag, code in blocks:
                if tag == "" or tag in wanted:
                    return code
        return blocks[0][1]
    if any(OPENING.fullmatch(line) for line in text.split("\n")):
        return ""  # fences, but only empty blocks
    return _tidy(text.split("\n"))


def python_from_answer(answer: str) -> str:
    """The Python of an answer: its Python (or first) fenced block, else the bare text.

    A transcript of an interactive session (lines starting with ``>>>`` and
    ``...``) becomes the code typed at the prompts; its output lines are dropped.
    """
    code = extract_code(answer, prefer="python")
    lines = code.split("\n")
    first = next((line for line in lines if line.strip()), "")
    if not first.startswith(">>>"):
        return code
    typed = []
    for line in lines:
        if line.startswith((">>> ", "... ")):
            typed.append(line[4:])
        elif line.rstrip() in (">>>", "..."):
            typed.append("")
    return "\n".join(typed)


def sql_from_answer(answer: str) -> str:
    """The SQL of an answer: its SQL (or first) fenced block, else the bare text.

    Bare text (no fence) is trimmed the way models write it: prose lines
    before the first line that starts with an SQL keyword are dropped, and
    when no semicolon ends the statement, it ends at the first blank line.
    """
    text = _normalize(answer)
    if any(OPENING.fullmatch(line) for line in text.split("\n")):
        return extract_code(text, prefer="sql")
    lines = _tidy(text.split("\n")).split("\n")
    start = next((i for i, line in enumerate(lines) if SQL_START.match(line)), 0)
    code = "\n".join(lines[start:])
    head = re.split(r"\n[ \t]*\n", code, maxsplit=1)[0]
    return code if _terminated(head) else head


def _terminated(sql: str) -> bool:
    """Whether a semicolon in ``sql`` ends a complete statement."""
    pos = sql.find(";")
    while pos != -1:
        if sqlite3.complete_statement(sql[:pos + 1]):
            return True
        pos = sql.find(";", pos + 1)
    return False


def _skip_comments(sql: str) -> str:
    """``sql`` without its leading whitespace and comments."""
    while True:
        sql = sql.lstrip()
        if sql.startswith("--"):
            end = sql.find("\n")
            sql = "" if end < 0 else sql[end + 1:]
        elif sql.startswith("/*"):
            end = sql.find("*/", 2)
            sql = "" if end < 0 else sql[end + 2:]
        else:
            return sql


def first_statement(sql: str) -> str | None:
    """The first SQL statement of a script, without its semicolon; None if there is none.

    Semicolons inside string literals, quoted identifiers, comments and
    trigger bodies do not end a statement (``sqlite3.complete_statement``
    decides); a final statement without a semicolon counts; leading comments
    and empty statements (``;;``) are skipped.
    """
    text, start = str(sql or ""), 0
    pos = text.find(";")
    while pos != -1:
        chunk = text[start:pos + 1]
        if sqlite3.complete_statement(chunk):
            body = _skip_comments(chunk)
            if body.rstrip(" \t\n;"):
                return body[:-1].strip()
            start = pos + 1
        pos = text.find(";", pos + 1)
    rest = _skip_comments(text[start:]).strip()
    return rest or None


def statement_keyword(statement: str) -> str:
    """The first keyword of a statement, upper case ("SELECT", "WITH", ...; "" if none)."""
    match = re.match(r"[\s(]*([A-Za-z_]+)", _skip_comments(statement))
    return match.group(1).upper() if match else ""
