"""Which statements the query endpoint runs, decided on ClickHouse's own parse of them.

The engine enforces reading (the session is ``readonly=1``), but readonly lets
through what still reaches outside the database: ``INTO OUTFILE`` (chdb writes
the file), the ``file()`` function, some table functions (chdb's ``Python()``).
So the statement is parsed by the engine that runs it (``formatQuery`` gives one
canonical statement, ``parseQueryToJSON`` its syntax tree) and the tree is
checked here: allowed statement kinds, no output clauses, table functions from
an allowlist, no function that reads files or calls out.

>>> check_tree({"type": "SelectWithUnionQuery", "list_of_selects": {}})
>>> check_tree({"type": "InsertQuery"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pipeline.query_check.QueryRefused: only SELECT, EXPLAIN and SHOW TABLES ... (got InsertQuery)
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import SpanstreamError

#: Root node types the endpoint runs; DESCRIBE/EXISTS/SHOW CREATE have no JSON form in
#: ClickHouse's parser output, so they are refused (system.columns/system.tables answer them).
STATEMENTS = ("SelectWithUnionQuery", "ExplainQuery", "ShowTablesQuery")
#: Table functions that only generate rows (everything else reads files, URLs, other
#: servers, processes or this process's Python objects).
TABLE_FUNCTIONS = frozenset(
    {
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "generate_series",
        "generateSeries",
        "primes",
        "values",
        "SQLStandardValues",
        "generateRandom",
    }
)
#: Ordinary functions that read files or reach other hosts (compared in lower case).
DENIED_FUNCTIONS = frozenset(
    {
        "file",
        "catboostevaluate",
        "hascolumnintable",  # its remote form connects to any host
        "aiclassify",
        "aiembed",
        "aiextract",
        "aifilter",
        "aigenerate",
        "airedact",
        "aisimilarity",
        "aitranslate",
    }
)
#: Clauses that change where or how the result goes (the endpoint returns JSON rows).
_OUTPUT_KEYS = {
    "out_file": "INTO OUTFILE",
    "format_ast": "FORMAT",
    "settings_ast": "SETTINGS",
    "compression": "COMPRESSION",
}


class QueryRefused(SpanstreamError):
    """The statement could change data or reach outside the database; the endpoint only reads."""

    exit_code = 2


def check_tree(tree: dict[str, Any]) -> None:
    """Raise QueryRefused unless ``tree`` (parseQueryToJSON output) is a plain reading statement."""
    kind = tree.get("type")
    if kind not in STATEMENTS:
        raise QueryRefused(f"only SELECT, EXPLAIN and SHOW TABLES are allowed (got {kind})")
    if kind == "ExplainQuery":
        inner = tree.get("query")
        if not isinstance(inner, dict):
            raise QueryRefused("EXPLAIN without a statement")
        check_tree(inner)
    _walk(tree, parent_key="")


def _walk(node: Any, parent_key: str) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, parent_key)
        return
    if not isinstance(node, dict):
        return
    for key, clause in _OUTPUT_KEYS.items():
        if node.get(key) is not None:
            raise QueryRefused(f"{clause} is not allowed: the endpoint returns JSON rows")
    if node.get("type") == "Function":
        _check_function(str(node.get("name", "")), table=parent_key == "table_function")
    for key, value in node.items():
        _walk(value, key)


def _check_function(name: str, table: bool) -> None:
    """Table functions from the allowlist only; no ordinary function that reaches out.

    >>> _check_function("numbers", table=True)
    >>> _check_function("url", table=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.query_check.QueryRefused: table function url() is not allowed (allowed: ...)
    >>> _check_function("File", table=False)
    Traceback (most recent call last):
    ...
    pipeline.query_check.QueryRefused: function File() is not allowed: it reads files or other hosts
    """
    if table and name not in TABLE_FUNCTIONS:
        allowed = ", ".join(sorted(TABLE_FUNCTIONS))
        raise QueryRefused(f"table function {name}() is not allowed (allowed: {allowed})")
    if not table and name.lower() in DENIED_FUNCTIONS:
        raise QueryRefused(f"function {name}() is not allowed: it reads files or other hosts")


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal.

    >>> print(sql_string("it's a \\\\ test"))
    'it\\'s a \\\\ test'
    """
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
