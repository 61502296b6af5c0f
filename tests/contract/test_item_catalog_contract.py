"""ItemCatalog contract: every backend must behave exactly like this.

The backend comes from the `item_catalog` / `item_catalog_factory` fixtures
(tests/contract/conftest.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from overdrive.domain.types import Item
from overdrive.store.protocols import ItemCatalog

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def item(n: int, **fields) -> Item:
    return Item(id=f"i{n}", created_at=T0 + n, **fields)


def scan_all(catalog: ItemCatalog, batch_size: int = 10_000) -> list[list[Item]]:
    return list(catalog.scan(batch_size=batch_size))


FULL = Item(
    id="full/ü",
    type="video",
    text="A clip about cats — ünïcode too",
    image_url="https://cdn.example/thumb.jpg",
    video_url="https://cdn.example/clip.mp4",
    audio_url="/data/audio/clip.wav",
    author_id="author-7",
    created_at=T0 + 0.5,
    # Deliberately unsorted and mixed case: order and spelling must be kept.
    tags=("zebra", "Cats", "apple", "cats"),
    metadata={"lang": "en", "duration_s": 12.5, "nsfw": False, "chapters": [{"t": 0, "title": "intro"}]},
)
BARE = Item(id="bare")  # every optional field None / empty


async def test_empty_catalog(item_catalog: ItemCatalog) -> None:
    assert await item_catalog.count() == 0
    assert await item_catalog.get(["x"]) == {}
    assert await item_catalog.get([]) == {}
    assert await item_catalog.newest(10) == []
    assert scan_all(item_catalog) == []
    assert await item_catalog.delete("x") is False


async def test_put_get_roundtrips_every_field(item_catalog: ItemCatalog) -> None:
    await item_catalog.put([FULL, BARE])
    got = await item_catalog.get([FULL.id, BARE.id])
    assert got == {FULL.id: FULL, BARE.id: BARE}
    assert got[FULL.id].tags == ("zebra", "Cats", "apple", "cats")
    assert isinstance(got[FULL.id].tags, tuple)
    assert got[BARE.id].metadata == {}
    assert got[BARE.id].created_at is None and got[BARE.id].author_id is None and got[BARE.id].text is None


async def test_put_replaces_the_whole_item(item_catalog: ItemCatalog) -> None:
    await item_catalog.put([FULL])
    replacement = Item(id=FULL.id, type="text", text="rewritten", created_at=T0 + 99)
    await item_catalog.put([replacement])
    assert await item_catalog.get([FULL.id]) == {FULL.id: replacement}
    assert await item_catalog.count() == 1
    assert [i for b in scan_all(item_catalog) for i in b] == [replacement]


async def test_put_with_same_id_twice_in_one_call_keeps_the_last(item_catalog: ItemCatalog) -> None:
    await item_catalog.put([item(1, text="first"), item(1, text="second")])
    assert (await item_catalog.get(["i1"]))["i1"].text == "second"
    assert await item_catalog.count() == 1


async def test_get_omits_missing_ids_and_tolerates_repeats(item_catalog: ItemCatalog) -> None:
    await item_catalog.put([item(1), item(2)])
    got = await item_catalog.get(["i2", "missing", "i1", "i2"])
    assert got == {"i1": item(1), "i2": item(2)}


async def test_get_more_than_500_ids(item_catalog: ItemCatalog) -> None:
    stored = [item(n, tags=(f"t{n % 5}",)) for n in range(1203)]
    await item_catalog.put(stored)
    wanted = [f"i{n}" for n in range(0, 1203, 1)] + [f"nope{n}" for n in range(300)]
    got = await item_catalog.get(wanted)
    assert got == {i.id: i for i in stored}
    assert await item_catalog.count() == 1203


async def test_delete(item_catalog: ItemCatalog) -> None:
    await item_catalog.put([item(1), item(2), item(3)])
    assert await item_catalog.delete("i2") is True
    assert await item_catalog.delete("i2") is False
    assert await item_catalog.delete("never") is False
    assert await item_catalog.get(["i1", "i2", "i3"]) == {"i1": item(1), "i3": item(3)}
    assert await item_catalog.count() == 2
    assert await item_catalog.newest(10) == ["i3", "i1"]
    assert sorted(i.id for b in scan_all(item_catalog) for i in b) == ["i1", "i3"]


async def test_newest_orders_by_created_at_not_insertion(item_catalog: ItemCatalog) -> None:
    order = [5, 1, 9, 3, 7]
    for n in order:
        await item_catalog.put([item(n)])
    assert await item_catalog.newest(10) == ["i9", "i7", "i5", "i3", "i1"]
    assert await item_catalog.newest(2) == ["i9", "i7"]
    # Replacing an item moves it to its new created_at.
    await item_catalog.put([Item(id="i1", created_at=T0 + 100)])
    assert await item_catalog.newest(2) == ["i1", "i9"]


async def test_newest_never_puts_undated_items_first(item_catalog: ItemCatalog) -> None:
    await item_catalog.put([Item(id="undated"), item(1), item(2)])
    assert (await item_catalog.newest(2)) == ["i2", "i1"]


async def test_scan_yields_every_item_once_in_batches(item_catalog: ItemCatalog) -> None:
    stored = [item(n) for n in range(23)] + [BARE, FULL]
    await item_catalog.put(stored)
    batches = scan_all(item_catalog, batch_size=4)
    assert all(0 < len(b) <= 4 for b in batches)
    scanned = [i for b in batches for i in b]
    assert len(scanned) == len(stored)
    assert {i.id: i for i in scanned} == {i.id: i for i in stored}
    assert await item_catalog.count() == 25


async def test_concurrent_puts_all_land(item_catalog: ItemCatalog) -> None:
    await asyncio.gather(*(item_catalog.put([item(n)]) for n in range(100)))
    assert await item_catalog.count() == 100


async def test_data_survives_close_and_reopen(item_catalog_factory, store_location: Path) -> None:
    async with item_catalog_factory(store_location) as catalog:
        await catalog.put([FULL, BARE, item(1)])
        await catalog.delete("i1")
    async with item_catalog_factory(store_location) as catalog:
        assert await catalog.count() == 2
        assert await catalog.get([FULL.id, BARE.id, "i1"]) == {FULL.id: FULL, BARE.id: BARE}
