"""The known-users cache stays bounded: least recently used go first, entries expire."""

import pytest

from gpuhub.hub.gpu_usage.cache import TTLCache


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_size_is_bounded_and_recently_used_entries_stay():
    cache = TTLCache(maxsize=3, ttl=60, clock=Clock())
    for name in ("a", "b", "c"):
        cache.set(name, True)
    assert cache.get("a") is True  # a is now the most recently used
    cache.set("d", False)
    assert len(cache) == 3
    assert cache.get("b") is None  # the least recently used went
    assert (cache.get("a"), cache.get("c"), cache.get("d")) == (True, True, False)


def test_many_names_never_grow_it_past_its_size():
    cache = TTLCache(maxsize=100, ttl=60, clock=Clock())
    for n in range(10_000):
        cache.set(f"user-{n}", n % 2 == 0)
    assert len(cache) == 100
    assert cache.get("user-9999") is False and cache.get("user-0") is None


def test_entries_expire():
    clock = Clock()
    cache = TTLCache(maxsize=10, ttl=60, clock=clock)
    cache.set("ann", False)
    clock.now = 59
    assert cache.get("ann") is False
    clock.now = 60
    assert cache.get("ann", "gone") == "gone" and len(cache) == 0


def test_a_cache_holds_at_least_one_entry():
    with pytest.raises(ValueError, match="maxsize"):
        TTLCache(maxsize=0)
