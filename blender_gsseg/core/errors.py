"""Errors that carry the CLI exit code, so every layer reports bad input the same way, and the default memory
budget that :class:`MemoryBudgetError` is measured against."""

import os


class GssegError(Exception):
    """Base class; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class BadInputError(GssegError):
    """A file or argument the user gave cannot be used. The message names the file and the problem."""

    exit_code = 2


class MemoryBudgetError(GssegError):
    """The job would not fit in the memory budget; refused before allocating."""

    exit_code = 3


class CudaUnavailableError(GssegError):
    """CUDA was asked for, but CuPy or a CUDA device is missing."""

    exit_code = 4


class CancelledError(GssegError):
    """The user cancelled (Ctrl+C in the CLI, Esc in Blender)."""

    exit_code = 130


def default_memory_budget() -> int:
    """A quarter of physical RAM, in bytes: what every floor checks its allocations against by default."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30
