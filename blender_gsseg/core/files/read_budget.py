"""What a reader may allocate: a file's declared counts are turned into the bytes its scene needs and checked
against the machine before anything is inflated or allocated, so that a small file declaring millions of splats
is refused with the figure and the budget (exit 3) instead of taking the memory first."""

from __future__ import annotations

import os

from ..errors import MemoryBudgetError


def read_memory_budget() -> int:
    """Bytes a reader may take for one scene: half of physical RAM (4 GiB where it cannot be known)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def check_read_memory(path, what: str, needed: int) -> None:
    """Refuse (MemoryBudgetError) reading ``path`` when ``needed`` bytes (for ``what``) exceed the budget."""
    budget = read_memory_budget()
    if needed > budget:
        raise MemoryBudgetError(f"{path}: {what} needs {needed / 2**30:.2f} GiB to read, more than the "
                                f"{budget / 2**30:.2f} GiB a reader may take (half of this machine's memory)")
