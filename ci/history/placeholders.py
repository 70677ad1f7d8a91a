"""The history's SQL is written once with `?` placeholders (SQLite's qmark style); this
rewrites it for psycopg, whose placeholders are `%s` and whose parser reads every `%` of
the query text as the start of one.

A tokenizer, not a text replacement: a `?` is a placeholder only outside string literals
('it''s?', E'\\'?'), quoted identifiers ("why?"), comments (-- and nested /* */) and
dollar-quoted strings ($$?$$, $tag$?$tag$); every literal `%`, wherever it stands, is
doubled so psycopg reads it back as one `%`. Values never pass through here: psycopg
sends them apart from the query.
"""

from __future__ import annotations

import re
from functools import lru_cache

# A dollar quote's opening tag: `$$` or `$name$` (a positional `$1` is not one).
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _quoted_end(sql: str, start: int, quote: str, backslash: bool) -> int:
    """Index just past the literal opened at `start` (a doubled quote stays inside)."""
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if sql.startswith(quote, i + 1):
                i += 2
                continue
            return i + 1
        i += 1
    raise ValueError(f"unterminated {quote} literal in SQL: {sql[start : start + 40]!r}")


def _block_comment_end(sql: str, start: int) -> int:
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ValueError(f"unterminated /* comment in SQL: {sql[start : start + 40]!r}")


def _skip(sql: str, i: int) -> int | None:
    """If a literal, identifier or comment starts at `i`, the index just past it."""
    ch = sql[i]
    if ch == "'":
        escaped = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _word(sql[i - 2]))
        return _quoted_end(sql, i, "'", escaped)
    if ch == '"':
        return _quoted_end(sql, i, '"', False)
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", i):
        return _block_comment_end(sql, i)
    if ch == "$" and (i == 0 or not _word(sql[i - 1])):
        tag = _DOLLAR_TAG.match(sql, i)
        if tag:
            end = sql.find(tag.group(), tag.end())
            if end < 0:
                raise ValueError(f"unterminated {tag.group()} string in SQL")
            return end + len(tag.group())
    return None


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@lru_cache(maxsize=512)
def to_psycopg(sql: str) -> str:
    """`sql` with each placeholder `?` as `%s` and each literal `%` as `%%`.
    ValueError for an unterminated literal or comment (a bug in the statement)."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        end = _skip(sql, i)
        if end is not None:
            out.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        ch = sql[i]
        out.append("%s" if ch == "?" else "%%" if ch == "%" else ch)
        i += 1
    return "".join(out)
