"""The host's side of the paged KV cache: which physical pages are free, who references each, and which
pages each sequence holds, per attention type.

Pages are reference-counted: the G samples of a group and the group's prompt (its prefix) share the prompt's
pages, and a sequence about to write into a page someone else also references copies it first
(copy-on-write). Admission reserves a sequence's worst case (its `budget` of page allocations), so a
running sequence never finds the pool empty.
"""

import dataclasses

import numpy as np

from cwm_jax.kv_cache import PageLayout


class PagePool:
    """The physical pages of one attention type."""

    def __init__(self, pages: int):
        self.size = pages
        self.free = list(range(pages - 1, -1, -1))  # pop() hands out low pages first
        self.refs = np.zeros(pages, np.int32)
        self.reserved = 0  # allocations promised to admitted sequences
        self.peak_in_use = 0

    @property
    def in_use(self) -> int:
        return self.size - len(self.free)

    def available(self) -> int:
        return len(self.free) - self.reserved

    def allocate(self) -> int:
        page = self.free.pop()
        self.refs[page] = 1
        self.peak_in_use = max(self.peak_in_use, self.in_use)
        return page

    def retain(self, page: int):
        self.refs[page] += 1

    def release(self, page: int) -> bool:
        """Drops one reference; True when the page went back to the free list."""
        self.refs[page] -= 1
        if self.refs[page] == 0:
            self.free.append(page)
            return True
        return False


@dataclasses.dataclass
class SequencePages:
    """The pages one sequence references, per attention type: logical page -> physical page; `budget` the
    allocations it may still make (reserved in the pools)."""

    mapped: dict[str, dict[int, int]]
    budget: dict[str, int]

    @classmethod
    def empty(cls, kinds) -> "SequencePages":
        return cls({k: {} for k in kinds}, {k: 0 for k in kinds})

    def share(self, pools: dict[str, PagePool]) -> "SequencePages":
        """Another reference to every page (a group's prefix, or a sample forked from it); no budget."""
        for kind, pages in self.mapped.items():
            for page in pages.values():
                pools[kind].retain(page)
        return SequencePages({k: dict(v) for k, v in self.mapped.items()}, {k: 0 for k in self.mapped})

    def reserve(self, pools: dict[str, PagePool], need: dict[str, int]) -> bool:
        """Reserves `need` more allocations per type if every pool can promise them."""
        if any(pools[k].available() < n for k, n in need.items()):
            return False
        for kind, n in need.items():
            pools[kind].reserved += n
            self.budget[kind] += n
        return True

    def prepare(self, pools, layout: PageLayout, start: int, end: int, copies: dict[str, list]):
        """Makes positions [start, end) writable: maps missing pages, copies a shared page before it is
        written (appending (source, destination) to copies), and for a ring returns the pages the window no
        longer reaches from `start`."""
        page = layout.page_size
        for kind, mapped in self.mapped.items():
            oldest = layout.oldest_page(kind, start)
            for logical in [lp for lp in mapped if lp < oldest]:
                self._drop(pools[kind], kind, logical)
            for logical in range(start // page, (end - 1) // page + 1):
                if logical not in mapped:
                    mapped[logical] = self._allocate(pools[kind], kind)
                elif pools[kind].refs[mapped[logical]] > 1:
                    fresh = self._allocate(pools[kind], kind)
                    copies[kind].append((mapped[logical], fresh))
                    pools[kind].release(mapped[logical])
                    mapped[logical] = fresh

    def table_row(self, layout: PageLayout, kind: str, row: np.ndarray):
        row[:] = 0  # entries past the sequence hold positions no query sees
        for logical, physical in self.mapped[kind].items():
            row[layout.entry(kind, logical)] = physical

    def release(self, pools: dict[str, PagePool]):
        """Drops every reference and returns the unused budget."""
        for kind in self.mapped:
            for logical in list(self.mapped[kind]):
                self._drop(pools[kind], kind, logical)
            pools[kind].reserved -= self.budget[kind]
            self.budget[kind] = 0

    def _allocate(self, pool: PagePool, kind: str) -> int:
        assert self.budget[kind] > 0, f"a sequence allocating a {kind} page beyond its reservation"
        self.budget[kind] -= 1
        pool.reserved -= 1
        return pool.allocate()

    def _drop(self, pool: PagePool, kind: str, logical: int):
        if pool.release(self.mapped[kind].pop(logical)):
            # A page back in the pool: it may allocate one again (its window sliding on).
            self.budget[kind] += 1
            pool.reserved += 1
