"""AnchoredOffsetPaging: a list that changes between requests loses and repeats no item that exists for
the whole pull, where naive offset paging does."""

from __future__ import annotations

import random

import pytest

from seccollect.http.anchored_paging import AnchoredOffsetPaging
from seccollect.http.paging import OffsetPaging, PagingError


class ChangingList:
    """A sorted list served by offset; ``mutate`` runs before every request (a pull in progress)."""

    def __init__(self, size: int, seed: int, churn: int) -> None:
        self.items = [k * 10 for k in range(1, size + 1)]
        self.rng = random.Random(seed)
        self.churn = churn
        self.removed: set[int] = set()
        self.added: set[int] = set()
        self.requests = 0

    def mutate(self) -> None:
        for _ in range(self.rng.randrange(self.churn + 1)):
            if self.items and self.rng.random() < 0.5:
                victim = self.items.pop(self.rng.randrange(len(self.items)))
                self.removed.add(victim)
            else:
                new = self.rng.randrange(1, max(self.items or [10]) + 20)
                if new not in self.items and new not in self.removed:
                    self.items.append(new)
                    self.items.sort()
                    self.added.add(new)

    def fetch(self, skip: int, limit: int) -> tuple[list[int], int]:
        self.requests += 1
        if self.requests > 1:
            self.mutate()
        return self.items[skip : skip + limit], len(self.items)

    def throughout(self, original: list[int]) -> set[int]:
        return set(original) - self.removed


@pytest.mark.parametrize("seed", range(40))
def test_every_item_that_exists_throughout_is_read_exactly_once(seed):
    changing = ChangingList(size=300, seed=seed, churn=6)
    original = list(changing.items)
    paging = AnchoredOffsetPaging(page_size=25, key=str)
    read = [item for page in paging.pages(changing.fetch) for item in page]
    assert len(read) == len(set(read)), "an item was read twice"
    assert changing.throughout(original) <= set(read), "an item that existed for the whole pull was lost"
    assert set(read) <= set(original) | changing.added, "an item that never existed was read"


def test_naive_offset_paging_loses_items_on_the_same_changes():
    """The control: the same changes make skip += limit paging lose items (so the test above can fail)."""
    lost = 0
    for seed in range(40):
        changing = ChangingList(size=300, seed=seed, churn=6)
        original = list(changing.items)
        total = [None]

        def fetch(offset, limit, changing=changing, total=total):
            page, total[0] = changing.fetch(offset, limit)
            return page

        read = [i for page in OffsetPaging(25).pages(fetch, total=lambda total=total: total[0]) for i in page]
        lost += len(changing.throughout(original) - set(read))
    assert lost > 0


def test_removals_before_the_frontier_step_back():
    items = list(range(100))
    calls = []

    def fetch(skip, limit):
        calls.append(skip)
        if len(calls) == 3:
            del items[:16]  # 16 items already read go: the list slides forward by more than a page
        return items[skip : skip + limit], len(items)

    paging = AnchoredOffsetPaging(page_size=10, key=str)
    read = [i for page in paging.pages(fetch) for i in page]
    assert read == list(range(100))
    assert paging.figures.step_backs == 2
    assert paging.figures.totals == {100, 84}


def test_the_anchor_itself_removed():
    items = list(range(50))

    def fetch(skip, limit):
        if skip == 9 and 9 in items:
            items.remove(9)  # the last item read disappears
        return items[skip : skip + limit], len(items)

    read = [i for page in AnchoredOffsetPaging(page_size=10, key=str).pages(fetch) for i in page]
    assert read == list(range(50))


def test_an_api_that_ignores_skip_is_stopped():
    items = list(range(100))
    with pytest.raises(PagingError, match="ignores skip"):
        list(AnchoredOffsetPaging(page_size=10, key=str).pages(lambda skip, limit: (items[:limit], 100)))


def test_skip_read_as_a_page_index_is_stopped():
    items = list(range(1000))

    def fetch(skip, limit):  # page index semantics: skip=9 means the tenth page
        return items[skip * limit : skip * limit + limit], len(items)

    with pytest.raises(PagingError):
        list(AnchoredOffsetPaging(page_size=10, key=str, max_idle=5).pages(fetch))


def test_ends_at_total_and_at_a_short_page():
    items = list(range(30))
    requests = []

    def fetch(skip, limit):
        requests.append(skip)
        return items[skip : skip + limit], len(items)

    assert [i for p in AnchoredOffsetPaging(page_size=10, key=str).pages(fetch) for i in p] == items
    # 0..9, then from 9 (one overlap) 9..18, 18..27, 27..29 (short): four requests.
    assert requests == [0, 9, 18, 27]
