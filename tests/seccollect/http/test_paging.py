"""Paging always ends: a short page, the announced total, or a clear error for a page that repeats,
a runaway listing, a documented maximum, or a continuation link that loops."""

from __future__ import annotations

import pytest

from seccollect.http.paging import OffsetPaging, PagingError, follow_links, page_fingerprint


def _records(offset: int, limit: int, total: int) -> list[dict]:
    return [{"_id": f"r{i}"} for i in range(offset, min(offset + limit, total))]


def test_offset_paging_reads_every_record_once_and_stops_on_a_short_page() -> None:
    calls: list[tuple[int, int]] = []

    def fetch(offset: int, limit: int) -> list[dict]:
        calls.append((offset, limit))
        return _records(offset, limit, 25)

    pages = list(OffsetPaging(10).pages(fetch))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert calls == [(0, 10), (10, 10), (20, 10)]


def test_a_total_that_is_reached_ends_paging_without_an_extra_request() -> None:
    calls: list[int] = []

    def fetch(offset: int, limit: int) -> list[dict]:
        calls.append(offset)
        return _records(offset, limit, 20)

    assert sum(len(p) for p in OffsetPaging(10).pages(fetch, total=lambda: 20)) == 20
    assert calls == [0, 10]


def test_a_vendor_that_ignores_the_offset_is_stopped_at_the_second_page() -> None:
    calls: list[int] = []

    def fetch(offset: int, limit: int) -> list[dict]:
        calls.append(offset)
        return _records(0, limit, 1000)  # always the first page

    with pytest.raises(PagingError, match="repeats the previous page; the vendor ignores the offset"):
        list(OffsetPaging(10, what="Acme alert").pages(fetch))
    assert calls == [0, 10]


def test_a_runaway_listing_stops_at_the_page_cap() -> None:
    with pytest.raises(PagingError, match="still more records after 3 pages"):
        list(OffsetPaging(10, max_pages=3).pages(lambda offset, limit: _records(offset, limit, 10**9)))


def test_passing_a_documented_maximum_offset_is_an_error_not_a_silent_cut() -> None:
    with pytest.raises(PagingError, match="more than 20 records in one listing"):
        list(OffsetPaging(10, max_offset=20).pages(lambda offset, limit: _records(offset, limit, 100)))


def test_fingerprints_tell_pages_apart() -> None:
    assert page_fingerprint(_records(0, 10, 50)) != page_fingerprint(_records(10, 10, 50))
    assert page_fingerprint(_records(0, 10, 50)) == page_fingerprint(_records(0, 10, 50))
    assert page_fingerprint([]) == "empty"


def test_follow_links_until_there_is_none_and_stop_a_loop() -> None:
    links = {"p2": ("page2", "p3"), "p3": ("page3", None)}
    assert list(follow_links(lambda: ("page1", "p2"), lambda link: links[link])) == ["page1", "page2", "page3"]
    looping = {"p2": ("page2", "p3"), "p3": ("page3", "p2")}
    with pytest.raises(PagingError, match="repeats an earlier one"):
        list(follow_links(lambda: ("page1", "p2"), lambda link: looping[link]))
