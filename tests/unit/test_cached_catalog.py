"""The catalog cache: writes through it are seen at once, writes elsewhere after `ttl_s`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from overdrive.domain.types import Item
from overdrive.store.cached_catalog import CachedItemCatalog
from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA, SqliteItemCatalog
from overdrive.store.sqlite_db import SqliteDatabase

pytestmark = pytest.mark.anyio


@pytest.fixture
async def inner(anyio_backend: str, tmp_path: Path):
    catalog = SqliteItemCatalog(SqliteDatabase(path=tmp_path / "c.sqlite3", schema=ITEMS_SCHEMA))
    yield catalog
    await catalog.close()


async def test_writes_elsewhere_show_after_the_ttl(inner: SqliteItemCatalog) -> None:
    cached = CachedItemCatalog(inner, ttl_s=0.2)
    await cached.put([Item(id="a", text="v1")])
    await inner.put([Item(id="a", text="v2")])  # another replica's write
    assert (await cached.get(["a"]))["a"].text == "v1"
    await asyncio.sleep(0.25)
    assert (await cached.get(["a"]))["a"].text == "v2"


async def test_a_read_overlapping_a_write_does_not_cache_the_old_item(inner: SqliteItemCatalog) -> None:
    cached = CachedItemCatalog(inner)
    await inner.put([Item(id="a", text="old")])
    read = asyncio.create_task(cached.get(["a"]))
    await asyncio.sleep(0)  # the read is waiting on the database
    await cached.put([Item(id="a", text="new")])
    await read
    assert (await cached.get(["a"]))["a"].text == "new"


async def test_deletes_and_capacity(inner: SqliteItemCatalog) -> None:
    cached = CachedItemCatalog(inner, capacity=2)
    await cached.put([Item(id=i) for i in "abc"])
    assert set(await cached.get(["a", "b", "c"])) == {"a", "b", "c"}  # "a" was evicted, read again
    assert await cached.delete("b") and await cached.get(["b"]) == {}
