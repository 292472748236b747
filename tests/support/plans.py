"""Query plans of the statements the ledger really runs.

`ExplainingConnection` stands in for a connection: each statement a ledger function
sends is run as `EXPLAIN (FORMAT JSON)` with the same parameters instead, and its plan
kept, so a test checks the plan of the code's own SQL, never of a copy of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg


class ExplainingConnection:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.plans: list[tuple[str, dict[str, Any]]] = []

    def execute(self, query: str, params: Any = None, **_options: Any) -> psycopg.Cursor[Any]:
        cursor = self._conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params, prepare=False)
        (row,) = cursor.fetchall()
        document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
        self.plans.append((query, document[0]["Plan"]))
        return self._conn.execute("SELECT 1 WHERE false")

    def nodes(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(statement, plan node) for every node of every plan kept."""
        for query, plan in self.plans:
            stack = [plan]
            while stack:
                node = stack.pop()
                yield query, node
                stack.extend(node.get("Plans", ()))


def scans_of(explaining: ExplainingConnection, table: str) -> list[tuple[str, str | None]]:
    """(node type, index name) of every read of `table` in the plans kept.

    A bitmap heap scan reads through the bitmap index scans below it: those are
    reported, with their index, in its place.
    """
    found: list[tuple[str, str | None]] = []
    for _query, node in explaining.nodes():
        if node.get("Relation Name") != table or node["Node Type"] == "ModifyTable":
            continue
        if node["Node Type"] == "Bitmap Heap Scan":
            stack = list(node.get("Plans", ()))
            while stack:
                child = stack.pop()
                if child["Node Type"] == "Bitmap Index Scan":
                    found.append((child["Node Type"], child.get("Index Name")))
                stack.extend(child.get("Plans", ()))
            continue
        found.append((node["Node Type"], node.get("Index Name")))
    return found
