"""Item numbers and the per-item arrays components gather from: numbers are handed out once per
stored id, a pinned list is looked up once, and the feature columns agree with the items whether
or not they have a number."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from overdrive.domain.item_numbers import NO_NUMBER, ItemColumn, ItemNumbers, item_numbers
from overdrive.domain.types import Item
from overdrive.services.scorers import FeatureColumns


def test_numbers_are_handed_out_once_and_only_when_asked() -> None:
    numbers = ItemNumbers()
    a, b = numbers.number("a"), numbers.number("b")
    assert (a, b) == (1, 2) and numbers.number("a") == a and len(numbers) == 2
    assert list(numbers.of(["b", "never", "a"])) == [b, NO_NUMBER, a]
    assert numbers.get("never") == NO_NUMBER and len(numbers) == 2  # looking up hands out nothing


def test_a_pinned_list_is_looked_up_once_and_again_after_a_new_number() -> None:
    numbers = ItemNumbers()
    numbers.number("a")
    ids = ["a", "b"]
    numbers.pin(ids)
    first = numbers.of(ids)
    assert numbers.of(ids) is first and list(first) == [1, NO_NUMBER]
    assert numbers.of(["a", "b"]) is not first  # an equal list that is not the pinned one
    numbers.number("b")  # stored state for "b" from now on: the pinned answer is stale
    assert list(numbers.of(ids)) == [1, 2]
    numbers.known(["b"], np.array([2]))
    assert list(numbers.of(ids)) == [1, 2]


def test_an_item_column_grows_and_reads_its_default_elsewhere() -> None:
    column = ItemColumn(-1, np.int64)
    column[3] = 30
    column.set_many(np.array([5000, 7]), np.array([1, 2]))
    assert list(column.gather(np.array([3, 7, 5000, NO_NUMBER, 4, 10**7]))) == [30, 2, 1, -1, -1, -1]
    assert column[5000] == 1 and column[10**7] == -1


def _fresh_id() -> str:
    return f"item-{uuid.uuid4().hex}"


def _direct(columns: FeatureColumns, items: list[Item]) -> list[list[str]]:
    """Each item's features, read back from the columns' answer."""
    flat, lengths = columns.of(items)
    names = columns._names
    starts = np.cumsum(lengths) - lengths
    return [[names[c] for c in flat[s: s + n]] for s, n in zip(starts, lengths)]


@pytest.mark.parametrize("numbered", [(True, True, True), (False, True, False), (False, False, False)])
def test_feature_columns_agree_with_the_items_with_and_without_numbers(numbered: tuple[bool, ...]) -> None:
    items = [Item(id=_fresh_id(), type="video", tags=("cats", "dogs"), author_id="ann", created_at=100.0),
             Item(id=_fresh_id(), type="text", created_at=None),
             Item(id=_fresh_id(), type="audio", tags=("jazz",), created_at=300.0)]
    for item, has in zip(items, numbered):
        if has:
            item_numbers.number(item.id)
    columns = FeatureColumns()
    for _ in range(2):  # worked out, then gathered from the cache
        assert _direct(columns, list(items)) == [list(i.features()) for i in items]
        created = columns.created_at(list(items))
        assert created[0] == 100.0 and np.isnan(created[1]) and created[2] == 300.0
    retagged = Item(id=items[0].id, type="video", tags=("birds",), created_at=200.0)  # a new Item, same id
    again = [items[2], retagged]
    assert _direct(columns, again) == [list(items[2].features()), list(retagged.features())]
    assert list(columns.created_at(again)) == [300.0, 200.0]
