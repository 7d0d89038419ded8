"""Atomic output: write to a temporary file in the target folder, then rename over the target.

A crash or an error mid-write never leaves a half-written file, and never touches what the user had.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same extension, for writers that look at it, e.g. Pillow);
    on success it is renamed to ``path``, on failure removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".part" + ext, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path, mode="wb"):
    """Yield a file object on a temporary file beside ``path``; it becomes ``path`` only on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
