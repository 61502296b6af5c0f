"""Importers turn MovieLens, CSV and JSONL files into valid wire dicts and name bad rows precisely."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from overdrive.api.schemas import ItemIn, SignalIn
from overdrive.data.importers import (
    load_csv,
    load_jsonl,
    load_movielens,
    read_csv_interactions,
    read_csv_items,
    read_jsonl_interactions,
    read_jsonl_items,
    read_ml100k_ratings,
    rating_signal,
    rebased,
)
from overdrive.data.synthetic import write_world
from overdrive.data.synthetic import WorldConfig, generate_world

FLAGS_ACTION_COMEDY = "|".join("1" if g in (1, 5) else "0" for g in range(19))


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _valid(items: list[dict], signals: list[dict]) -> None:
    for item in items:
        ItemIn.model_validate(item)
    for signal in signals:
        SignalIn.model_validate(signal)


def _ml100k(folder: Path) -> Path:
    none, unknown_only = "|".join("0" * 19), "|".join(["1"] + ["0"] * 18)
    _write(folder / "u.item", (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{FLAGS_ACTION_COMEDY}\n"
        f"2|Café Society (1939)|01-Jan-1939|||{none}\n"
        f"3|Unknown Date (1996)||||{unknown_only}\n"
    ), encoding="latin-1")
    _write(folder / "u.data", "196\t1\t5\t881250949\n186\t2\t3\t891717742\n22\t3\t1\t878887116\n196\t3\t4\t881250950\n")
    return folder


def test_movielens_100k(tmp_path: Path) -> None:
    ds = load_movielens(_ml100k(tmp_path / "ml-100k"))
    assert ds.name == "movielens-100k"
    items, signals = list(ds.items()), list(ds.signals())
    _valid(items, signals)
    toy, cafe, unknown = items
    assert toy["id"] == "1" and toy["text"] == "Toy Story (1995)" and toy["type"] == "video"
    assert toy["tags"] == ["Action", "Comedy"]
    assert toy["created_at"] == datetime(1995, 1, 1, tzinfo=timezone.utc).timestamp()
    assert toy["metadata"]["imdb_url"].startswith("http://us.imdb.com/")
    assert cafe["text"] == "Café Society (1939)"
    assert cafe["created_at"] == datetime(1939, 1, 1, tzinfo=timezone.utc).timestamp()  # before 1970 is a date too
    assert unknown["tags"] == [] and "created_at" not in unknown  # the 'unknown' genre is no tag
    assert [(s["user_id"], s["content_id"], s["signal_type"]) for s in signals] == [
        ("196", "1", "like"), ("186", "2", "view"), ("22", "3", "dislike"), ("196", "3", "like")
    ]
    assert signals[0] == {
        "user_id": "196", "signal_type": "like", "content_id": "1", "timestamp": 881250949.0,
        "intensity": 1.0, "signal_id": "ml-196-1", "metadata": {"rating": 5},
    }
    assert signals[3]["intensity"] == pytest.approx(0.8)


def test_movielens_1m_and_a_parent_folder(tmp_path: Path) -> None:
    folder = tmp_path / "download" / "ml-1m"
    _write(folder / "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Señor Nobody::Drama\n", "latin-1")
    _write(folder / "ratings.dat", "1::1::5::978300760\n1::2::2::978302109\n")
    ds = load_movielens(tmp_path / "download")  # the folder the zip unpacked into
    assert ds.name == "movielens-1m"
    items, signals = list(ds.items()), list(ds.signals())
    _valid(items, signals)
    assert items[0]["tags"] == ["Animation", "Children's", "Comedy"]
    assert items[0]["created_at"] == datetime(1995, 1, 1, tzinfo=timezone.utc).timestamp()
    assert items[1]["text"] == "Señor Nobody" and "created_at" not in items[1]
    assert [s["signal_type"] for s in signals] == ["like", "dislike"]
    assert signals[1]["signal_id"] == "ml-1-2" and signals[1]["intensity"] == pytest.approx(0.8)


def test_movielens_latest_csv(tmp_path: Path) -> None:
    _write(tmp_path / "movies.csv", 'movieId,title,genres\n1,"Heat, The (1995)",Action|Crime\n2,Nothing,(no genres listed)\n')
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,3.5,964982703\n1,2,2.5,964982224\n")
    ds = load_movielens(tmp_path)
    items, signals = list(ds.items()), list(ds.signals())
    _valid(items, signals)
    assert items[0]["text"] == "Heat, The (1995)" and items[0]["tags"] == ["Action", "Crime"] and items[1]["tags"] == []
    assert [s["signal_type"] for s in signals] == ["view", "dislike"]
    assert signals[0]["metadata"] == {"rating": 3.5}


def test_load_movielens_without_movielens_files(tmp_path: Path) -> None:
    _write(tmp_path / "readme.txt", "nothing here")
    with pytest.raises(ValueError, match="no MovieLens files"):
        load_movielens(tmp_path)


@pytest.mark.parametrize(
    ("rating", "expected"),
    [(5, ("like", 1.0)), (4, ("like", 0.8)), (4.5, ("like", 0.9)), (3, ("view", 1.0)), (3.5, ("view", 1.0)),
     (2.5, ("dislike", 0.7)), (2, ("dislike", 0.8)), (1, ("dislike", 1.0)), (0.5, ("dislike", 1.0))],
)
def test_rating_mapping(rating: float, expected: tuple[str, float]) -> None:
    kind, intensity = rating_signal(rating)
    assert (kind, pytest.approx(intensity)) == expected


def test_csv_items_and_interactions(tmp_path: Path) -> None:
    items_csv = _write(tmp_path / "items.csv", (
        "id,title,type,author_id,created_at,tags,language\n"
        "a1,First post,image,alice,2024-05-01T12:00:00Z,cats| cute |,en\n"
        "a2,,text,,,,\n"
    ))
    events_csv = _write(tmp_path / "events.csv", (
        "user_id,item_id,signal_type,rating,timestamp,duration,intensity,source\n"
        "u1,a1,,,1714564800,,,app\n"
        "u1,a1,,4,1714564801,,,\n"
        "u2,a2,dwell,,2024-05-01T12:00:05+00:00,12.5,2,web\n"
        "u2,a2,,,,,,\n"
        "u2,a2,,,,,,\n"
    ))
    ds = load_csv(items_csv, events_csv)
    items, signals = list(ds.items()), list(ds.signals())
    _valid(items, signals)
    assert items[0] == {
        "id": "a1", "type": "image", "text": "First post", "author_id": "alice",
        "created_at": datetime(2024, 5, 1, 12, tzinfo=timezone.utc).timestamp(),
        "tags": ["cats", "cute"], "metadata": {"language": "en"},
    }
    assert items[1] == {"id": "a2", "type": "text"}
    view, like, dwell, bare1, bare2 = signals
    assert (view["signal_type"], view["content_id"], view["metadata"]) == ("view", "a1", {"source": "app"})
    assert (like["signal_type"], like["intensity"], like["metadata"]) == ("like", 0.8, {"rating": 4})
    assert (dwell["duration"], dwell["intensity"], dwell["timestamp"]) == (12.5, 2.0, 1714564805.0)
    assert "timestamp" not in bare1
    ids = [s["signal_id"] for s in signals]
    assert len(set(ids)) == 5, "rows without a time are told apart by line"
    assert ids == [s["signal_id"] for s in read_csv_interactions(events_csv)], "ids are deterministic"


def test_generated_ids_depend_on_content_not_on_line_when_timed(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", "user_id,content_id,timestamp\nu1,x,100\nu1,y,200\n")
    b = _write(tmp_path / "b.csv", "user_id,content_id,timestamp\nu1,y,200\nu1,x,100\n")
    assert {s["signal_id"] for s in read_csv_interactions(a)} == {s["signal_id"] for s in read_csv_interactions(b)}


def test_jsonl_round_trip_of_a_synthetic_world(tmp_path: Path) -> None:
    world = generate_world(WorldConfig(n_users=20, n_items=60, signals_per_user=15, n_days=3, seed=4, end=1_750_000_000.0))
    write_world(world, tmp_path)
    ds = load_jsonl(tmp_path / "items.jsonl", tmp_path / "signals.jsonl")
    assert list(ds.items()) == world.items
    assert list(ds.signals()) == world.signals
    assert (tmp_path / "truth.npz").is_file()


def test_jsonl_accepts_numbers_as_ids_and_lists_as_tags(tmp_path: Path) -> None:
    items = _write(tmp_path / "i.jsonl", '{"id": 7, "tags": ["a", "b"], "metadata": {"k": 1}, "extra": true}\n\n')
    events = _write(tmp_path / "e.jsonl", '{"user_id": 1, "content_id": 7, "rating": 5, "signal_id": "s1"}\n')
    assert list(read_jsonl_items(items)) == [{"id": "7", "type": "text", "tags": ["a", "b"], "metadata": {"k": 1, "extra": True}}]
    [signal] = read_jsonl_interactions(events)
    assert signal == {"user_id": "1", "signal_type": "like", "content_id": "7", "intensity": 1.0, "signal_id": "s1", "metadata": {"rating": 5}}


@pytest.mark.parametrize(
    ("name", "text", "reader", "line", "field"),
    [
        ("e.csv", "user_id,content_id,signal_type\nu1,a,view\nu1,a,poke\n", read_csv_interactions, 3, "signal_type"),
        ("e.csv", "user_id,content_id,timestamp\nu1,a,1\nu1,a,yesterday\n", read_csv_interactions, 3, "timestamp"),
        ("e.csv", "user_id,content_id,timestamp\nu1,a,1\nu1,a,99999999999\n", read_csv_interactions, 3, "timestamp"),
        ("e.csv", "user_id,content_id,duration\nu1,a,-3\n", read_csv_interactions, 2, "duration"),
        ("e.csv", "user_id,content_id,intensity\nu1,a,1\nu1,a,101\n", read_csv_interactions, 3, "intensity"),
        ("e.csv", "user_id,content_id,rating\nu1,a,great\n", read_csv_interactions, 2, "rating"),
        ("e.csv", "user_id,content_id\nu1,a\n,a\n", read_csv_interactions, 3, "user_id"),
        ("e.csv", "user_id,content_id\nu1,a,extra\n", read_csv_interactions, 2, "content_id"),
        ("e.csv", "user_id,signal_type\nu1,view\n", read_csv_interactions, 1, "content_id"),
        ("e.csv", f"user_id,content_id\nu1,{'x' * 257}\n", read_csv_interactions, 2, "content_id"),
        ("i.csv", "id,type\na,text\nb,hologram\n", read_csv_items, 3, "type"),
        ("i.csv", "id,metadata\na,{}\nb,[1]\n", read_csv_items, 3, "metadata"),
        ("i.jsonl", '{"id": "a"}\n{"id": "b", "tags": "x"}\n', read_jsonl_items, 2, "tags"),
        ("e.jsonl", '{"user_id": "u", "content_id": "a"}\n{"user_id": "u", "content_id": \n', read_jsonl_interactions, 2, "line"),
        ("e.jsonl", '[1, 2]\n', read_jsonl_interactions, 1, "line"),
        ("u.data", "1\t2\t5\t881250949\n1\t3\tfive\t881250949\n", read_ml100k_ratings, 2, "rating"),
        ("u.data", "1\t2\t5\t881250949\n1\t3\t5\n", read_ml100k_ratings, 2, "timestamp"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, name: str, text: str, reader, line: int, field: str) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(ValueError) as err:
        list(reader(path))
    message = str(err.value)
    assert str(path) in message and f"line {line}," in message and f"field '{field}'" in message, message


def test_readers_stream_rows_before_a_later_bad_one(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.csv", "user_id,content_id\n" + "u,a\n" * 5 + "u,\n")
    rows = read_csv_interactions(path)
    assert [next(rows)["user_id"] for _ in range(5)] == ["u"] * 5
    with pytest.raises(ValueError, match="line 7"):
        next(rows)


def test_rebased_moves_the_newest_signal_to_the_given_end(tmp_path: Path) -> None:
    ds = load_movielens(_ml100k(tmp_path))
    moved = rebased(ds, end=2_000_000_000.0)
    signals = list(moved.signals())
    assert max(s["timestamp"] for s in signals) == 2_000_000_000.0
    before = [s["timestamp"] for s in ds.signals()]
    assert [s["timestamp"] - b for s, b in zip(signals, before)] == pytest.approx([2_000_000_000.0 - max(before)] * 4)
    assert all(0.0 <= i.get("created_at", 0.0) <= 2_000_000_000.0 for i in moved.items())
