"""Reading PostgreSQL plans of the documents table, which is partitioned (keys/partitions.py):
a plan names each partition and each partition's copy of an index, not the table's own."""

from django.db import connection

from keys.models import ApiDocument

TABLE = ApiDocument._meta.db_table


def populated() -> set[str]:
    """keys_apidocument and its partitions holding documents, as ANALYZE left them: an empty
    partition (days ahead) is read whole at no cost, and the planner rightly does so."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE (relname = %s OR relname LIKE %s) AND relkind = 'r' AND reltuples > 0",
            [TABLE, TABLE + "\\_%"],
        )
        return {name for (name,) in cursor.fetchall()}


def copies(*indexes: str) -> set[str]:
    """The indexes named and their partitions' copies of them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)",
            [list(indexes)],
        )
        return set(indexes) | {name for (name,) in cursor.fetchall()}


def nodes(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    found, waiting = [], [plan[0]["Plan"] if isinstance(plan, list) else plan["Plan"]]
    while waiting:
        node = waiting.pop()
        found.append(node)
        waiting.extend(node.get("Plans", []))
    return found
