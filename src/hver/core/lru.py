"""A bounded least-recently-used map, for what never changes under its key: a commit's
files, a tree's extensions, a blob's parsed content. Nothing is ever invalidated."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded map for what never changes under its key (a commit, a tree, a blob id):
    least recently used out first, once the weights of its values pass `capacity`."""

    def __init__(self, capacity: int, weight: Callable[[V], int] = lambda _v: 1) -> None:
        self.capacity = capacity
        self.weight = weight
        self._data: OrderedDict[K, V] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: K, value: V) -> V:
        with self._lock:
            if key not in self._data:
                self._data[key] = value
                self._total += self.weight(value)
                # The newest entry always stays, however heavy.
                while self._total > self.capacity and len(self._data) > 1:
                    _k, old = self._data.popitem(last=False)
                    self._total -= self.weight(old)
            return self._data[key]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._total = 0
