"""Running calls side by side in tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def parallel(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """fn(0..n-1) on n threads released together; results or exceptions, in order."""
    barrier = threading.Barrier(n)

    def task(i: int) -> Any:
        barrier.wait()
        try:
            return fn(i)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(task, range(n)))
