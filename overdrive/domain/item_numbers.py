"""Process-wide item numbers: one small integer per item id this process keeps state for.

A ranking of thousands of candidates resolves each id once, here, and every component then
gathers its per-item state from an array indexed by the number (`ItemColumn`) instead of looking
the id up in a hash table of its own: in random order each lookup is a cache miss, and a ranking
made six of them per candidate. Numbers are handed out only for ids something stores state for
(catalog items, engaged items, fitted models, content vectors), never for an id a request merely
names, so the table grows with the catalog, not with traffic; they are never reused and never
leave the process (persisted state keeps ids).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np

NO_NUMBER = 0  # an id nothing has numbered


class ItemNumbers:
    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pinned: Sequence[str] | None = None
        self._last: tuple[Sequence[str], int, np.ndarray] | None = None  # `of`'s answer for `_pinned`

    def number(self, item_id: str) -> int:
        """`item_id`'s number, handing one out on first sight (thread-safe)."""
        n = self._numbers.get(item_id)
        if n is None:
            with self._lock:
                n = self._numbers.get(item_id)
                if n is None:
                    n = self._numbers[item_id] = len(self._numbers) + 1
                    self._last = None  # a list numbered before may hold this id as NO_NUMBER
        return n

    def get(self, item_id: str) -> int:
        """`item_id`'s number, `NO_NUMBER` if it has none (none is handed out)."""
        return self._numbers.get(item_id, NO_NUMBER)

    def numbers(self, item_ids: Iterable[str]) -> list[int]:
        return [self.number(i) for i in item_ids]

    def of(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each id's number, `NO_NUMBER` where it has none. Worked out once for the pinned list
        (`pin`): a ranking hands one list of ids to every component."""
        last = self._last
        if last is not None and last[0] is item_ids and last[1] == len(item_ids):
            return last[2]
        found = np.fromiter(map(self._numbers.get, item_ids, repeat(NO_NUMBER)), dtype=np.intp, count=len(item_ids))
        if item_ids is self._pinned:
            self._last = (item_ids, len(item_ids), found)
        return found

    def pin(self, item_ids: Sequence[str]) -> None:
        """Keep `of`'s answer for `item_ids` (until the next pin) and the list with it: the caller
        must not change it in place meanwhile."""
        self._pinned, self._last = item_ids, None

    def known(self, item_ids: Sequence[str], found: np.ndarray) -> None:
        """`pin` with the answer known: `found` are `item_ids`' numbers (e.g. a filtered list's)."""
        self._pinned, self._last = item_ids, (item_ids, len(item_ids), found)

    def __len__(self) -> int:
        return len(self._numbers)


item_numbers = ItemNumbers()


class ItemColumn:
    """One value per item number in a numpy array that grows as numbers are written; every
    number not written (`NO_NUMBER` included) reads as `default`. The array's last element is
    never written, so a gather clips numbers beyond the end to it. One writer thread per column:
    growing replaces the array, which readers on other threads see whole, old or new."""

    def __init__(self, default: float | int = 0, dtype: type = np.float64) -> None:
        self._default = default
        self._values = np.full(1024, default, dtype=dtype)

    def __setitem__(self, number: int, value: float | int) -> None:
        if number >= len(self._values) - 1:
            self._grow(number)
        self._values[number] = value

    def set_many(self, numbers: np.ndarray, values: np.ndarray | float | int) -> None:
        if len(numbers):
            top = int(numbers.max())
            if top >= len(self._values) - 1:
                self._grow(top)
            self._values[numbers] = values

    def _grow(self, number: int) -> None:
        grown = np.full(max(2 * len(self._values), number + 2), self._default, dtype=self._values.dtype)
        grown[: len(self._values)] = self._values
        self._values = grown

    def __getitem__(self, number: int) -> float | int:
        values = self._values
        return values[number].item() if number < len(values) else self._default

    def gather(self, numbers: np.ndarray) -> np.ndarray:
        """The values at `numbers`, as a new array."""
        return np.take(self._values, numbers, mode="clip")
