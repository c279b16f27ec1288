"""The failures of the metadata index that a caller's input causes (and their common base, so
that ``except IndexError_`` also catches :class:`openjip.index.IndexUnavailable`)."""

from __future__ import annotations


class IndexError_(Exception):
    """Any failure of the metadata index."""


class InvalidQuery(IndexError_, ValueError):
    """A query the index cannot run (bad date range, negative limit, ...); the message says why."""


class InvalidRecord(IndexError_, ValueError):
    """A record that contradicts the index, e.g. a SeriesInstanceUID already in another study."""
