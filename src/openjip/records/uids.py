"""UID validation (PS3.5 9.1): what may become part of an object key."""

from __future__ import annotations

import re

# PS3.5 9.1: components of digits separated by dots, at most 64 characters. Leading zeros
# are illegal but common in the field; they do no harm in a key, so they are accepted.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline, which must not pass.
_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*\Z")
_MAX_UID_LENGTH = 64


class InvalidUID(ValueError):
    """A UID that is missing or not made of dot-separated digits (at most 64 characters)."""


def is_valid_uid(value: object) -> bool:
    """``True`` when ``value`` is a UID usable in an object key."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_UID_LENGTH
        and _UID_PATTERN.match(value) is not None
    )


def check_uid(value: object, name: str) -> str:
    """Return ``value`` as a UID string, or raise :class:`InvalidUID` naming the attribute."""
    if value is None or value == "":
        raise InvalidUID(f"{name} missing")
    text = str(value).strip(" \0")  # DICOM's padding only: a newline is not padding
    if not is_valid_uid(text):
        raise InvalidUID(f"{name} invalid: {text[:70]!r}")
    return text
