"""The qmark-to-psycopg rewrite of the history's SQL: placeholders only outside literals,
identifiers and comments; every literal `%` doubled. (On a real server:
tests/e2e/test_history_postgres.py.)"""

from __future__ import annotations

import pytest

from ci.history.placeholders import to_psycopg


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = %s AND c = %s"),
        ("SELECT 'why?', ?", "SELECT 'why?', %s"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ("SELECT E'\\'?', ?", "SELECT E'\\'?', %s"),
        ("SELECT 'a\\', ?", "SELECT 'a\\', %s"),  # standard string: a backslash is a backslash
        ('SELECT "odd?col" FROM t WHERE x = ?', 'SELECT "odd?col" FROM t WHERE x = %s'),
        ("SELECT ? -- why?\n, ?", "SELECT %s -- why?\n, %s"),
        ("SELECT /* a? /* b? */ c? */ ?", "SELECT /* a? /* b? */ c? */ %s"),
        ("SELECT $$?$$, $q$ it's ? $q$, ?", "SELECT $$?$$, $q$ it's ? $q$, %s"),
        ("SELECT $1, ?", "SELECT $1, %s"),  # a positional parameter is not a dollar quote
        ("SELECT name LIKE 'bench.%' AND v % 2 = ?", "SELECT name LIKE 'bench.%%' AND v %% 2 = %s"),
        ("SELECT '%s', ?", "SELECT '%%s', %s"),  # a literal %s is not a placeholder
        ("SELECT 1", "SELECT 1"),
    ],
)
def test_placeholders_outside_literals_and_every_percent_escaped(sql: str, expected: str) -> None:
    assert to_psycopg(sql) == expected


@pytest.mark.parametrize("sql", ["SELECT 'open", 'SELECT "open', "SELECT /* open", "SELECT $$x"])
def test_an_unterminated_literal_is_refused(sql: str) -> None:
    with pytest.raises(ValueError, match="unterminated"):
        to_psycopg(sql)
