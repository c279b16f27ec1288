"""The replay cache of signed requests: a nonce is accepted once, signatures made before the
service started are refused, entries leave with their time window, and a full cache refuses
(503) instead of forgetting a nonce."""

from __future__ import annotations

import time

import pytest

from openjip.federation.auth import AuthenticationFailed, NonceCache


def test_a_nonce_is_accepted_once() -> None:
    cache = NonceCache(max_age_seconds=300, capacity=10)
    now = int(time.time())
    cache.admit("site-b", "n1", now)
    cache.admit("site-c", "n1", now)  # the same nonce from another signer is another request
    with pytest.raises(AuthenticationFailed, match="replayed nonce") as refused:
        cache.admit("site-b", "n1", now)
    assert refused.value.status == 401


def test_signatures_from_before_the_start_are_refused() -> None:
    cache = NonceCache(max_age_seconds=300, capacity=10)
    with pytest.raises(AuthenticationFailed, match="before this service started"):
        cache.admit("site-b", "n1", cache.started - 1)


def test_the_cache_is_bounded_and_forgets_only_expired_nonces() -> None:
    cache = NonceCache(max_age_seconds=0, capacity=2)
    now = int(time.time())
    cache.admit("b", "n1", now)
    cache.admit("b", "n2", now)
    with pytest.raises(AuthenticationFailed) as full:
        cache.admit("b", "n3", now)
    assert full.value.status == 503 and len(cache) == 2
    # Entries leave once their window (0 s here, plus 10 s of clock-skew allowance) has passed;
    # their expiry is set into the past instead of waiting for it.
    for key in list(cache._expiry):
        cache._expiry[key] = time.time() - 1
    cache.admit("b", "n3", now)
    assert len(cache) == 1
