"""Paging that always ends: offset/limit paging with a repeat check and a page cap, and continuation
links followed until there is none.

A vendor that ignores ``offset`` answers every request with the first page; a naive loop then runs for
ever (and stages the same records again and again). :class:`OffsetPaging` fingerprints every page and
stops with a clear error when a page repeats the previous one, when a documented maximum (records or
pages) is passed, or when it has fetched ``max_pages`` pages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


class PagingError(RuntimeError):
    """Paging cannot go on without repeating or running for ever; retrying the task would not help."""


def page_fingerprint(page: Sequence[Any]) -> str:
    """Identifies a page by its size and its first and last records (cheap, and enough to tell two
    different pages of one result apart)."""
    if not page:
        return "empty"
    ends = json.dumps([len(page), page[0], page[-1]], sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.blake2b(ends.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class OffsetPaging:
    """Offset/limit paging.

    :param page_size: records asked for per request (``limit``).
    :param max_pages: the most pages one listing may take before it is stopped as runaway.
    :param max_offset: the largest offset the vendor documents serving (``None``: no documented limit);
        reaching it with more records left is an error, since records beyond it would be lost.
    :param what: what is paged, for messages (``Netskope alert``).
    """

    page_size: int
    max_pages: int = 100_000
    max_offset: int | None = None
    what: str = "records"

    def pages(self, fetch: Callable[[int, int], Sequence[Any]], *, total: Callable[[], int | None] | None = None) -> Iterator[Sequence[Any]]:
        """Yield pages ``fetch(offset, limit)`` until a short page (or ``total()`` records) is reached.

        :param fetch: returns the records at ``offset`` (at most ``limit`` of them).
        :param total: optional: the record count the vendor announced with the last page.
        """
        offset = 0
        previous: str | None = None
        for _ in range(self.max_pages):
            if self.max_offset is not None and offset > self.max_offset:
                raise PagingError(
                    f"{self.what}: more than {self.max_offset} records in one listing, the most the vendor "
                    "serves by offset; shorten the window (interval_minutes) so each run asks for fewer"
                )
            page = fetch(offset, self.page_size)
            fingerprint = page_fingerprint(page)
            if page and fingerprint == previous:
                raise PagingError(
                    f"{self.what}: the page at offset {offset} repeats the previous page; the vendor ignores "
                    "the offset parameter, so paging would never end (check the API URL, or a proxy that "
                    "caches responses)"
                )
            previous = fingerprint
            if page:
                yield page
            offset += len(page)
            announced = total() if total is not None else None
            if len(page) < self.page_size or (announced is not None and offset >= announced):
                return
        raise PagingError(
            f"{self.what}: still more records after {self.max_pages} pages of {self.page_size}; stopped so the "
            "task does not run for ever (shorten the window, or raise the page cap)"
        )


def follow_links(
    first: Callable[[], tuple[Any, str | None]],
    follow: Callable[[str], tuple[Any, str | None]],
    *,
    max_pages: int = 100_000,
    what: str = "records",
) -> Iterator[Any]:
    """Yield pages of a listing whose responses name their successor (a continuation URL).

    :param first: makes the first request; returns ``(page, next link or None)``.
    :param follow: requests a next link as given; returns ``(page, next link or None)``.
    :param max_pages: the most pages before the listing is stopped as runaway.
    :param what: what is paged, for messages.
    """
    page, link = first()
    yield page
    seen: set[str] = set()
    for _ in range(max_pages - 1):
        if not link:
            return
        if link in seen:
            raise PagingError(f"{what}: the vendor's continuation link repeats an earlier one; paging would never end")
        seen.add(link)
        page, link = follow(link)
        yield page
    if link:
        raise PagingError(f"{what}: still more pages after {max_pages}; stopped so the task does not run for ever")
