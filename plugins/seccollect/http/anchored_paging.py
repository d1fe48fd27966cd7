"""Offset paging of a list that changes while it is paged, without losing or repeating an item.

Plain ``skip += limit`` paging assumes the list holds still. When an item before the current offset is
removed, every later item moves one place forward and the item that slides over the offset is never
read; when one is inserted, the item at the offset is read twice. A full pull of an API without time
filters (hours of paging on a large tenant) meets both.

:class:`AnchoredOffsetPaging` keeps its place by *items*, not by numbers: every request after the first
starts one item before the frontier (``skip = frontier - 1``), so the page must begin with an item
already read - the anchor. Then, with the list in a stable order (a sort key the API is asked for):

* the page starts with the last item read: nothing moved; everything after it is new;
* the last item read is further into the page: items were inserted before it; what precedes it in
  the page was read already and is skipped;
* no item of the page was read before: items before the frontier were removed and the list slid
  forward, so unread items may now lie before ``skip``. The pager steps back a page at a time until
  the page holds an item it has read, and takes what follows the most recently read one.

Every item that exists from the start to the end of the pull is therefore read exactly once; an item
added or removed during the pull is read at most once (the next pull settles it). The pager ends at a
short page or when the announced ``total`` is reached from an anchored page, and never runs for ever: a
page that repeats the previous one at another offset (an API that ignores ``skip`` or reads it as a
page index) and a run of requests that bring nothing new stop it with :class:`PagingError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from seccollect.http.paging import PagingError, page_fingerprint


@dataclass
class PagingFigures:
    """What one pull through :class:`AnchoredOffsetPaging` took (for logs, figures and tests)."""

    requests: int = 0
    items: int = 0
    #: Items a page held again because items were inserted before the frontier (skipped).
    repeated: int = 0
    #: Pages re-read because items before the frontier were removed (the list slid forward).
    step_backs: int = 0
    #: Different ``total`` values announced during the pull (1 when the list held still).
    totals: set[int] = field(default_factory=set)


@dataclass
class AnchoredOffsetPaging:
    """Offset/limit paging anchored on items already read (see the module docstring).

    :param page_size: items asked for per request (``limit``).
    :param key: the identity of an item (must be the same for every read of it).
    :param what: what is paged, for messages.
    :param max_idle: consecutive requests that bring no new item before the pull is stopped.
    :param max_requests: requests one pull may take in all.
    """

    page_size: int
    key: Callable[[Any], str]
    what: str = "records"
    max_idle: int = 50
    max_requests: int = 1_000_000
    figures: PagingFigures = field(default_factory=PagingFigures)

    def pages(self, fetch: Callable[[int, int], tuple[Sequence[Any], int | None]]) -> Iterator[list[Any]]:
        """Yield the new items of each page, in list order.

        :param fetch: ``fetch(skip, limit) -> (items, total or None)``.
        """
        if self.page_size < 2:
            raise ValueError("anchored paging needs a page size of at least 2 (one item overlaps)")
        read: dict[str, int] = {}  # identity -> when it was read (the highest is the latest)
        frontier = 0  # where the next unread item is, in the list as last seen
        skip = 0
        idle = 0
        previous: tuple[int, str] | None = None
        figures = self.figures
        while True:
            if figures.requests >= self.max_requests:
                raise PagingError(f"{self.what}: still paging after {figures.requests} requests; stopped")
            page, total = fetch(skip, self.page_size)
            figures.requests += 1
            if total is not None:
                figures.totals.add(total)
            fingerprint = page_fingerprint(page)
            if page and previous is not None and previous[1] == fingerprint and previous[0] != skip:
                raise PagingError(
                    f"{self.what}: the page at skip={skip} repeats the page at skip={previous[0]}; the API "
                    "ignores skip or reads it as a page index, so paging cannot go on (check the API URL)"
                )
            previous = (skip, fingerprint)
            keys = [self.key(item) for item in page]
            latest, at = -1, -1
            for position, identity in enumerate(keys):
                seen = read.get(identity)
                if seen is not None and seen > latest:
                    latest, at = seen, position
            if read and at < 0 and skip > 0:
                # Nothing of this page was read: the list slid forward past unread items. Look earlier.
                figures.step_backs += 1
                idle += 1
                self._check_idle(idle)
                skip = max(0, skip - (self.page_size - 1))
                continue
            fresh: list[Any] = []
            for item, identity in zip(page[at + 1 :], keys[at + 1 :], strict=True):
                if identity in read:  # a re-read of an item that moved (only in an unstable order)
                    figures.repeated += 1
                    continue
                read[identity] = len(read)
                fresh.append(item)
            figures.repeated += max(0, at)
            idle = 0 if fresh else idle + 1
            self._check_idle(idle)
            if fresh:
                figures.items += len(fresh)
                yield fresh
            frontier = skip + len(page)
            if len(page) < self.page_size or (total is not None and frontier >= total):
                return
            skip = frontier - 1

    def _check_idle(self, idle: int) -> None:
        if idle > self.max_idle:
            raise PagingError(
                f"{self.what}: {idle} requests in a row brought no new item; the list changes faster than it "
                "can be paged, or the API does not honour skip/limit"
            )
