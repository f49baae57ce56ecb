"""A paginator for tables too big to count: the admin's API document list.

Django's Paginator counts every row the page's filters match (`COUNT(*)`), each time a
page is shown: at ten million documents that read is most of the page's time, and it
grows with the table. This one counts exactly up to CAP rows (a `LIMIT`ed count: it
stops there) and beyond that says so instead of counting on: on PostgreSQL it takes the
planner's estimate of the filtered query (`EXPLAIN`, which reads statistics, not rows),
on SQLite, which keeps no such statistics, it says "10,000+". The page text says which
(`count_text`, `is_estimate`).

How it fails: an estimate can be off (statistics go stale between `ANALYZE`s, and
PostgreSQL's autovacuum runs them); the count is never below CAP + 1 when more rows than
CAP match, so Django's admin never takes a big list for a short one and loads it whole,
and a page past the estimate is simply empty.
"""

import json

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

# Rows counted exactly before the count becomes an estimate: ~2 ms of an index scan.
CAP = 10_000


class EstimatedCountPaginator(Paginator):
    @cached_property
    def _counted(self) -> tuple[int, bool]:
        """(count, is_estimate)."""
        queryset = self.object_list.order_by()
        counted = queryset[: CAP + 1].count()
        if counted <= CAP:
            return counted, False
        if connections[queryset.db].vendor == "postgresql":
            plan = json.loads(queryset.explain(format="json"))
            return max(int(plan[0]["Plan"]["Plan Rows"]), CAP + 1), True
        return CAP + 1, True

    @cached_property
    def count(self) -> int:
        return self._counted[0]

    @property
    def is_estimate(self) -> bool:
        return self._counted[1]

    @property
    def count_text(self) -> str:
        """The number for a person: exact, "about 9,800,000" (PostgreSQL) or "10,000+" (SQLite)."""
        count, estimate = self._counted
        if not estimate:
            return f"{count:,}"
        if connections[self.object_list.db].vendor == "postgresql":
            return f"about {_rounded(count):,}"
        return f"{CAP:,}+"

    @property
    def cap_text(self) -> str:
        return f"{CAP:,}"


def _rounded(n: int) -> int:
    """Two significant digits: an estimate's other digits mean nothing."""
    digits = len(str(n)) - 2
    return round(n, -digits) if digits > 0 else n
