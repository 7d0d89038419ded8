"""Sequences whose items are made when they are read (a view's label map decoded from its file, mapped to
indices, paired with its camera), so that a long capture is never held in memory whole."""

from __future__ import annotations

import collections.abc


class ReadOnUse(collections.abc.Sequence):
    """Subclasses give ``__len__`` and ``_read(index)`` (``index`` in range, never negative); indexing, negative
    indices and slices (a list of the items read) are handled here."""

    def _read(self, index: int):
        raise NotImplementedError

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._read(k) for k in range(*index.indices(len(self)))]
        return self._read(range(len(self))[index])
