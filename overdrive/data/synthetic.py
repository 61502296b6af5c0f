"""A synthetic world with planted structure, so quality claims are checked against a known answer.

Topics own disjoint vocabularies and tag sets; authors specialise in topics; every item has a
dominant (and sometimes a secondary) topic and a Zipf-distributed popularity; every user holds a
Dirichlet topic-interest vector that drifts from one draw toward another over the period. Each
time the feed shows a user an item (an *exposure*), a chain of signals follows whose types and
dwell times depend on the user's affinity for the item's topics at that moment. Everything is a
pure function of `WorldConfig`, seed included; the work is vectorised with numpy.

With `context` on, every user lives in a time zone (and its country) and owns a mix of devices;
each session happens on one of them, and signals carry the device, the country and a timestamp
with the user's UTC offset. `context_effect` > 0 plants context-dependent taste: the interest
behind an exposure is the user's, multiplied per topic by everyone's factor for that
<device class>|<daypart> and by the user's own factor for that device (log-normal factors with
that sigma). At 0 the context is noise, and the world is otherwise the same one.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from overdrive.domain.types import CONTENT_TYPES, SIGNAL_TYPES

DAY_S = 86_400.0
WORDS_PER_TOPIC = 30

# Each topic: 30 words for text, 8 tags. Vocabularies and tag sets are disjoint across topics.
_TOPICS: dict[str, tuple[str, str]] = {
    "sports": (
        "football soccer basketball tennis goal striker referee stadium league playoff championship "
        "coach dribble touchdown inning pitcher marathon sprint medal olympics tournament scoreboard "
        "halftime penalty offside rebound slamdunk quarterback locker fans",
        "football basketball tennis olympics nba premierleague matchday athletes",
    ),
    "cooking": (
        "recipe oven garlic onion saute simmer braise knead dough flour butter skillet roast marinade "
        "seasoning basil oregano cumin broth whisk pastry caramelize spatula ladle dumpling noodles "
        "risotto vinaigrette brunch tasty",
        "recipes baking dinner vegan homecooking dessert foodie mealprep",
    ),
    "travel": (
        "passport airport itinerary backpacking hostel beach island mountain hiking luggage boarding "
        "flight layover visa souvenir resort cruise sightseeing landmark roadtrip campsite ferry jetlag "
        "wanderlust guidebook passenger terminal villa lagoon canyon",
        "travel wanderlust backpacker roadtrips beaches citybreak adventure vacation",
    ),
    "music": (
        "guitar drummer melody chorus lyrics album concert bassline synth vinyl playlist tempo rhythm "
        "harmony songwriter vocalist orchestra violin piano acoustic remix encore setlist festival "
        "headliner riff ballad symphony studio mixtape",
        "music livemusic guitarist hiphop indie gigs newmusic records",
    ),
    "technology": (
        "software laptop smartphone processor algorithm database cloud server startup gadget firmware "
        "bandwidth encryption python kernel compiler robotics silicon chipset touchscreen wireless "
        "developer opensource debugging api semiconductor browser datacenter automation cybersecurity",
        "tech programming gadgets ai startups foss coding devops",
    ),
    "fashion": (
        "outfit runway designer denim sneakers couture tailoring fabric silk handbag accessories "
        "lookbook streetwear boutique wardrobe stiletto blazer cardigan vintage hemline embroidery "
        "catwalk stylist jewelry sunglasses trench linen sequin minimalist thrifted",
        "fashion ootd style streetstyle sneakerhead vintagefashion designers beauty",
    ),
    "gaming": (
        "console controller multiplayer speedrun boss quest respawn loot leaderboard esports joystick "
        "pixel sandbox roguelike shooter strategy dungeon raid guild patch framerate headset streamer "
        "checkpoint avatar crafting arcade cartridge platformer level",
        "gaming competitive speedrunning indiegames retrogaming rpg twitch consoles",
    ),
    "science": (
        "telescope galaxy molecule physics chemistry biology experiment hypothesis laboratory quantum "
        "neutron genome fossil microscope asteroid nebula enzyme particle gravity evolution climate "
        "volcano isotope photon ecosystem specimen theorem orbit bacteria catalyst",
        "science space astronomy biologist physicist research nature chemist",
    ),
    "finance": (
        "stocks bonds dividend portfolio investor inflation mortgage budget savings equity hedge broker "
        "crypto bitcoin ledger valuation earnings recession liquidity pension retirement taxes etf "
        "bullish bearish credit banking revenue compound capital",
        "finance investing stockmarket cryptocurrency personalfinance money economy markets",
    ),
    "fitness": (
        "workout squat deadlift cardio treadmill yoga pilates stretching protein dumbbell kettlebell "
        "barbell biceps abs endurance hiit plank lunges gym trainer reps warmup cooldown flexibility "
        "calisthenics rowing cycling spin muscle hydration",
        "fitness training gymlife yogi running health strength motivation",
    ),
    "movies": (
        "cinema director screenplay blockbuster premiere trailer sequel actor actress documentary "
        "animation thriller comedy horror drama oscars boxoffice cinematography plot villain hero "
        "franchise screening popcorn cameo subtitles remake scene montage stuntman",
        "movies film cinephile netflix horrorfilms scifi filmreview awards",
    ),
    "pets": (
        "puppy kitten dog cat leash veterinarian adoption paws whiskers treats kibble grooming aquarium "
        "hamster parrot rabbit tortoise litter fetch collar shelter purring barking tailwag fluffy "
        "goldfish ferret rescue cuddle petbed",
        "pets dogs cats puppies adoptdontshop petcare cute animals",
    ),
}
_COMMON_WORDS = (
    "the and with about this that today really new great best just more from into every some how "
    "why what when our your after before little big first last week time"
).split()
_GENERIC_TAGS = ("trending", "new", "popular", "weekend")
# Share of each content type in the catalog, in CONTENT_TYPES order (text, image, video, audio, mixed).
CONTENT_MIX = (0.35, 0.30, 0.25, 0.05, 0.05)
_SYLLABLE_ONSETS = tuple("b c d f g k l m n p r s t v z br dr gr kr pl st tr".split())
_SYLLABLE_VOWELS = tuple("a e i o u ai ea io ou".split())
_T = {name: code for code, name in enumerate(SIGNAL_TYPES)}
_ZONES = ((-480, "US"), (-300, "US"), (0, "GB"), (60, "DE"), (330, "IN"), (540, "JP"))  # UTC offset, country
_DEVICES = ("mobile", "desktop", "tv")
_N_DAYPARTS = 4  # overdrive.domain.context.DAYPARTS


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Size and shape of a synthetic world. Equal configs give identical worlds."""

    n_users: int = 500
    n_items: int = 2000
    n_topics: int = 8
    n_days: float = 30.0
    signals_per_user: float = 60.0  # mean; total signals ≈ n_users × this
    seed: int = 0
    end: float | None = None  # epoch seconds of the latest event; None: now at generation time
    n_authors: int | None = None  # None: n_items // 20, at least n_topics
    interest_concentration: float = 0.3  # Dirichlet alpha: lower → users care about fewer topics
    drift: float = 0.5  # share of the final interest vector taken from the second Dirichlet draw
    zipf_exponent: float = 1.0  # item popularity ∝ 1 / rank^exponent
    exploration: float = 0.25  # share of exposures picked by popularity alone, ignoring interests
    secondary_topic_rate: float = 0.35  # share of items with a secondary topic
    back_catalog: float = 0.3  # share of items created before the period starts
    context: bool = False  # signals carry a device, a country and a zoned timestamp
    context_effect: float = 0.0  # sigma of the planted per-context topic factors (0: context is noise)

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_topics < 1 or self.n_items < self.n_topics:
            raise ValueError("need n_users >= 1, n_topics >= 1 and n_items >= n_topics")
        if not (self.n_days > 0 and self.signals_per_user > 0 and self.interest_concentration > 0):
            raise ValueError("n_days, signals_per_user and interest_concentration must be > 0")
        for name in ("drift", "exploration", "secondary_topic_rate", "back_catalog"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.zipf_exponent < 0 or (self.n_authors is not None and self.n_authors < 1):
            raise ValueError("zipf_exponent must be >= 0 and n_authors >= 1")
        if self.context_effect < 0 or (self.context_effect > 0 and not self.context):
            raise ValueError("context_effect must be >= 0, and needs context on")


@dataclass(frozen=True, slots=True)
class World:
    """Items and signals in the API's wire format, plus the ground truth that produced them.

    Row i of every per-item array describes `items[i]`; row u of every per-user array describes
    `user_ids[u]`. Signals are sorted by timestamp.
    """

    config: WorldConfig
    start: float
    end: float
    topic_names: tuple[str, ...]
    user_ids: list[str]
    items: list[dict]
    signals: list[dict]
    item_topic: np.ndarray  # (n_items,) dominant topic
    item_secondary_topic: np.ndarray  # (n_items,) secondary topic, -1 where none
    item_popularity: np.ndarray  # (n_items,) Zipf weight, sums to 1
    user_topics_start: np.ndarray  # (n_users, n_topics) interests at `start`
    user_topics: np.ndarray  # (n_users, n_topics) interests at `end`
    author_topic: dict[str, int] = field(default_factory=dict)
    user_utc_offset: np.ndarray | None = None  # (n_users,) minutes, with `context` on

    def interests_at(self, ts: float) -> np.ndarray:
        """Every user's interest vector at time `ts` (linear drift from start to end)."""
        f = min(max((ts - self.start) / (self.end - self.start), 0.0), 1.0)
        return (1.0 - f) * self.user_topics_start + f * self.user_topics


def topic_vocabulary(n_topics: int, seed: int = 0) -> tuple[tuple[str, ...], np.ndarray, list[tuple[str, ...]]]:
    """(names, words (n_topics, 30) array of str, tag sets). Past the shipped topics, pseudo-words."""
    names, words, tags = [], [], []
    shipped = list(_TOPICS.items())
    taken = {w for w_text, t_text in _TOPICS.values() for w in (w_text + " " + t_text).split()}
    for k in range(n_topics):
        if k < len(shipped):
            name, (w, t) = shipped[k]
            names.append(name)
            words.append(w.split())
            tags.append(tuple(t.split()))
        else:
            made = _pseudo_words(np.random.default_rng([seed, k]), WORDS_PER_TOPIC + 8, taken=taken)
            names.append(f"topic{k}")
            words.append(made[:WORDS_PER_TOPIC])
            tags.append(tuple(f"{w}{k}" for w in made[WORDS_PER_TOPIC:]))
    return tuple(names), np.array(words, dtype=object), tags


def generate_world(config: WorldConfig | None = None) -> World:
    """Build the world described by `config` (default sizes: 500 users, 2,000 items, ~30k signals)."""
    cfg = config or WorldConfig()
    rng = np.random.default_rng(cfg.seed)
    end = time.time() if cfg.end is None else float(cfg.end)
    start = end - cfg.n_days * DAY_S
    names, words, tag_sets = topic_vocabulary(cfg.n_topics, cfg.seed)
    cat = _catalog(rng, cfg, start, end)
    theta0 = rng.dirichlet(np.full(cfg.n_topics, cfg.interest_concentration), cfg.n_users)
    theta1 = rng.dirichlet(np.full(cfg.n_topics, cfg.interest_concentration), cfg.n_users)
    theta_end = (1.0 - cfg.drift) * theta0 + cfg.drift * theta1
    places = _places(cfg) if cfg.context else None
    ex = _exposures(rng, cfg, cat, theta0, theta_end, start, end, places)
    user_ids = [f"u{u:0{len(str(cfg.n_users - 1))}d}" for u in range(cfg.n_users)]
    item_ids = [f"i{i:0{len(str(cfg.n_items - 1))}d}" for i in range(cfg.n_items)]
    author_ids = [f"a{a:0{len(str(len(cat.author_topic) - 1))}d}" for a in range(len(cat.author_topic))]
    items = _item_dicts(rng, cat, item_ids, author_ids, words, tag_sets)
    signals = _signal_dicts(ex, cfg.seed, end, user_ids, item_ids, [author_ids[a] for a in cat.author], places)
    return World(
        config=cfg,
        start=start,
        end=end,
        topic_names=names,
        user_ids=user_ids,
        items=items,
        signals=signals,
        item_topic=cat.topic,
        item_secondary_topic=cat.secondary,
        item_popularity=cat.popularity,
        user_topics_start=theta0,
        user_topics=theta_end,
        author_topic={a: int(t) for a, t in zip(author_ids, cat.author_topic)},
        user_utc_offset=None if places is None else np.array([_ZONES[z][0] for z in places.zone]),
    )


@dataclass(frozen=True, slots=True)
class _Catalog:
    topic: np.ndarray
    secondary: np.ndarray
    author: np.ndarray
    author_topic: np.ndarray
    kind: np.ndarray  # index into CONTENT_TYPES
    created: np.ndarray
    popularity: np.ndarray


def _catalog(rng: np.random.Generator, cfg: WorldConfig, start: float, end: float) -> _Catalog:
    n, k = cfg.n_items, cfg.n_topics
    share = rng.dirichlet(np.full(k, 4.0))
    topic = rng.choice(k, size=n, p=share)
    topic[:k] = np.arange(k)  # every topic has an item ...
    secondary = (topic + rng.integers(1, max(k, 2), size=n)) % k
    secondary[(rng.random(n) >= cfg.secondary_topic_rate) | (k == 1)] = -1
    n_authors = cfg.n_authors or max(k, n // 20)
    author_topic = np.concatenate([np.arange(min(k, n_authors)), rng.choice(k, size=max(n_authors - k, 0), p=share)])
    author = rng.integers(n_authors, size=n)  # 10 % of items come from any author ...
    specialist = rng.random(n) < 0.9  # ... the rest from an author of the item's topic
    for t in range(k):
        pool = np.flatnonzero(author_topic == t)
        rows = np.flatnonzero(specialist & (topic == t))
        if pool.size:
            author[rows] = pool[rng.integers(pool.size, size=rows.size)]
    kind = rng.choice(len(CONTENT_TYPES), size=n, p=CONTENT_MIX)
    span = end - start
    back = rng.random(n) < cfg.back_catalog
    back[:k] = True  # ... that exists before the first exposure
    created = np.where(back, start - rng.random(n) * span, start + rng.random(n) * span)
    ranks = rng.permutation(n)
    popularity = 1.0 / (ranks + 1.0) ** cfg.zipf_exponent
    return _Catalog(topic, secondary, author, author_topic, kind, created, popularity / popularity.sum())


@dataclass(frozen=True, slots=True)
class _Places:
    """Where users live and what they use, drawn from a random stream of its own (so the rest of
    the world is the same with context on or off)."""

    rng: np.random.Generator
    zone: np.ndarray  # (n_users,) index into _ZONES
    devices: np.ndarray  # (n_users, len(_DEVICES)) each user's device mix
    everyone: np.ndarray  # (len(_DEVICES) * _N_DAYPARTS, n_topics) topic factor per context
    own: np.ndarray  # (n_users, len(_DEVICES), n_topics) each user's topic factor per device


def _places(cfg: WorldConfig) -> _Places:
    rng = np.random.default_rng([cfg.seed, 17])
    zone = rng.integers(len(_ZONES), size=cfg.n_users)
    devices = rng.dirichlet(np.full(len(_DEVICES), 0.7), cfg.n_users)
    sigma = cfg.context_effect
    everyone = np.exp(sigma * rng.standard_normal((len(_DEVICES) * _N_DAYPARTS, cfg.n_topics)))
    own = np.exp(sigma * rng.standard_normal((cfg.n_users, len(_DEVICES), cfg.n_topics)))
    return _Places(rng, zone, devices, everyone, own)


def _daypart(local_hour: np.ndarray) -> np.ndarray:
    """overdrive.domain.context.daypart, vectorised: 0 night, 1 morning, 2 afternoon, 3 evening."""
    return np.select([(local_hour >= 5) & (local_hour < 11), (local_hour >= 11) & (local_hour < 17),
                      (local_hour >= 17) & (local_hour < 22)], [1, 2, 3], default=0)


@dataclass(frozen=True, slots=True)
class _Exposures:
    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    fired: np.ndarray  # (E, len(SIGNAL_TYPES)) bool: which signals the exposure emitted
    dwell: np.ndarray  # seconds of attention when viewed
    skip_after: np.ndarray  # seconds before a skip
    device: np.ndarray | None = None  # index into _DEVICES, with context on


def _exposures(rng, cfg: WorldConfig, cat: _Catalog, theta0, theta_end, start: float, end: float,
               places: _Places | None) -> _Exposures:
    target = max(1, round(cfg.n_users * cfg.signals_per_user))
    # An exposure emits ~2 signals and repeats of a (user, item) pair are dropped: oversample, trim later.
    n_exp = max(2 * cfg.n_users, math.ceil(target / 1.2))
    activity = rng.lognormal(0.0, 0.8, cfg.n_users)
    counts = 1 + rng.multinomial(n_exp - cfg.n_users, activity / activity.sum())
    user = np.repeat(np.arange(cfg.n_users), counts)
    ts, session = _session_times(rng, counts, user, start, end)
    frac = ((ts - start) / (end - start))[:, None]
    interest = (1.0 - frac) * theta0[user] + frac * theta_end[user]  # (E, K) interest at that moment
    device = None
    if places is not None:  # one device per session; taste in that context
        on = places.devices.cumsum(axis=1)
        per_session = (places.rng.random(int(session.max()) + 1)[:, None] > on[_session_user(user, session)]).sum(axis=1)
        device = np.minimum(per_session[session], len(_DEVICES) - 1)
        offset = np.array([z for z, _ in _ZONES])[places.zone[user]]
        part = _daypart(((ts + offset * 60.0) // 3600 % 24).astype(np.int64))
        factor = places.everyone[device * _N_DAYPARTS + part] * places.own[user, device]
        interest = interest * factor
        interest /= interest.sum(axis=1, keepdims=True)
    u = rng.random(user.size)[:, None]
    topic = np.minimum((interest.cumsum(axis=1) < u * interest.sum(axis=1, keepdims=True)).sum(axis=1), cfg.n_topics - 1)
    item = np.empty(user.size, dtype=np.int64)
    explore = rng.random(user.size) < cfg.exploration
    item[explore] = _pick_available(rng, np.arange(cfg.n_items), cat, ts[explore])
    for t in range(cfg.n_topics):
        rows = np.flatnonzero(~explore & (topic == t))
        item[rows] = _pick_available(rng, np.flatnonzero(cat.topic == t), cat, ts[rows])
    _, first = np.unique(user * cfg.n_items + item, return_index=True)  # one exposure per (user, item)
    keep = np.sort(first)
    user, item, ts, interest = user[keep], item[keep], ts[keep], interest[keep]
    device = None if device is None else device[keep]
    fired, dwell, skip_after = _outcomes(rng, cfg, cat, item, interest)
    # Trim a random subset of exposures (whole chains) down to the target number of signals.
    order = rng.permutation(user.size)
    cut = int(np.searchsorted(fired[order].sum(axis=1).cumsum(), target)) + 1
    keep = np.sort(order[:cut])
    return _Exposures(user[keep], item[keep], ts[keep], fired[keep], dwell[keep], skip_after[keep],
                      None if device is None else device[keep])


def _session_user(user: np.ndarray, session: np.ndarray) -> np.ndarray:
    """The user of each session number."""
    owner = np.zeros(int(session.max()) + 1, dtype=np.int64)
    owner[session] = user
    return owner


def _session_times(rng, counts: np.ndarray, user: np.ndarray, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Exposures cluster into sessions of up to 20 minutes, ~8 exposures each: each exposure's
    time and session number."""
    span = end - start
    session_len = min(1200.0, span / 10.0)
    n_sessions = np.maximum(1, counts // 8)
    first = np.concatenate([[0], n_sessions.cumsum()[:-1]])
    session = first[user] + (rng.random(user.size) * n_sessions[user]).astype(np.int64)
    session_start = start + rng.random(int(n_sessions.sum())) * (span - session_len)
    return session_start[session] + rng.random(user.size) * session_len, session


def _pick_available(rng, pool: np.ndarray, cat: _Catalog, ts: np.ndarray) -> np.ndarray:
    """For each time in `ts`, one item of `pool` created by then, chosen in proportion to popularity."""
    pool = pool[np.argsort(cat.created[pool], kind="stable")]
    weight = cat.popularity[pool].cumsum()
    available = np.maximum(np.searchsorted(cat.created[pool], ts, side="right"), 1)
    pick = np.searchsorted(weight, rng.random(ts.size) * weight[available - 1], side="right")
    return pool[np.minimum(pick, available - 1)]


def _outcomes(rng, cfg: WorldConfig, cat: _Catalog, item: np.ndarray, interest: np.ndarray):
    """Which signals each exposure fires; `liking` ≈ 1 on a user's top topics, ≈ 0 far off them."""
    rows = np.arange(item.size)
    affinity = interest[rows, cat.topic[item]]
    sec = cat.secondary[item]
    affinity = affinity + np.where(sec >= 0, 0.3 * interest[rows, np.maximum(sec, 0)], 0.0)
    liking = 1.0 / (1.0 + np.exp(-1.5 * np.log(affinity * cfg.n_topics + 0.05)))
    dislike = 1.0 - liking
    kind = cat.kind[item]
    timed = (kind == CONTENT_TYPES.index("video")) | (kind == CONTENT_TYPES.index("audio"))
    p = np.zeros((item.size, len(SIGNAL_TYPES)))
    p[:, _T["skip"]] = 0.05 + 0.55 * dislike
    for name, base, slope in (
        ("like", 0.01, 0.12), ("comment", 0.002, 0.02), ("share", 0.002, 0.02),
        ("follow", 0.001, 0.01), ("bookmark", 0.003, 0.03), ("click", 0.08, 0.30), ("dwell", 0.35, 0.30),
    ):
        p[:, _T[name]] = base + slope * liking
    p[:, _T["scroll"]] = np.where(timed, 0.05 + 0.10 * liking, 0.20 + 0.30 * liking)
    p[:, _T["completion"]] = np.where(timed, 0.10 + 0.60 * liking, 0.05 + 0.25 * liking)
    for name, base in (("hide", 0.03), ("dislike", 0.03), ("report", 0.003)):
        p[:, _T[name]] = base * dislike**2
    fired = rng.random(p.shape) < p
    skipped = fired[:, _T["skip"]]
    fired[:, _T["view"]] = ~skipped
    positive = [_T[n] for n in ("like", "comment", "share", "follow", "bookmark", "click", "dwell", "scroll", "completion")]
    fired[:, positive] &= ~skipped[:, None]
    dwell = rng.lognormal(np.log(2.0 + 50.0 * liking**2), 0.6)  # median 2 s off-interest, 52 s on
    skip_after = 0.3 + 2.2 * rng.random(item.size)
    return fired, dwell, skip_after


def _signal_dicts(ex: _Exposures, seed: int, end: float, user_ids, item_ids, item_author,
                  places: _Places | None) -> list[dict]:
    e_idx, code = np.nonzero(ex.fired)
    d = ex.dwell[e_idx]
    # Seconds after the exposure each signal happens, by type; durations where they mean something.
    offset = np.select(
        [code == _T["view"], code == _T["skip"], code == _T["click"], code == _T["scroll"],
         (code == _T["dwell"]) | (code == _T["completion"]), code >= _T["skip"]],
        [0.0, ex.skip_after[e_idx], 0.1 * d, 0.3 * d, d, ex.skip_after[e_idx] + 1.0],
        default=0.6 * d,
    )
    duration = np.select(
        [code == _T["skip"], (code == _T["dwell"]) | (code == _T["completion"])],
        [ex.skip_after[e_idx], d], default=np.nan,
    ).round(3)
    ts = np.minimum(ex.ts[e_idx] + offset, end).round(3)
    order = np.lexsort((code, e_idx, ts))
    follow = _T["follow"]
    out: list[dict] = []
    append = out.append
    users, items = ex.user[e_idx].tolist(), ex.item[e_idx].tolist()
    e_list, c_list, ts_list, dur_list = e_idx.tolist(), code.tolist(), ts.tolist(), duration.tolist()
    zones = {m: datetime.timezone(datetime.timedelta(minutes=m)) for m, _ in _ZONES}
    devices = ex.device.tolist() if ex.device is not None else []
    for j in order.tolist():
        c = c_list[j]
        sig = {
            "user_id": user_ids[users[j]],
            "signal_type": SIGNAL_TYPES[c],
            "content_id": item_ids[items[j]],
            "timestamp": ts_list[j],
            "signal_id": f"syn{seed}-{e_list[j]}-{c}",
        }
        if dur_list[j] == dur_list[j]:  # not NaN
            sig["duration"] = dur_list[j]
        if c == follow:
            sig["metadata"] = {"author_id": item_author[items[j]]}
        if places is not None:
            minutes, country = _ZONES[places.zone[users[j]]]
            zone = zones[minutes]
            sig["timestamp"] = datetime.datetime.fromtimestamp(ts_list[j], zone).isoformat(timespec="milliseconds")
            sig["metadata"] = {**sig.get("metadata", {}), "device_info": {"device_class": _DEVICES[devices[e_list[j]]]},
                               "location": {"country": country}}
        append(sig)
    return out


def _item_dicts(rng, cat: _Catalog, item_ids, author_ids, words: np.ndarray, tag_sets) -> list[dict]:
    n = cat.topic.size
    # Text: 2-4 sentences of 5-11 words; 70 % dominant topic, 15 % secondary (else dominant), 15 % common.
    sent_len = rng.integers(5, 12, size=(n, 4))
    n_sent = rng.integers(2, 5, size=n)
    sent_len[np.arange(4)[None, :] >= n_sent[:, None]] = 0
    n_words = sent_len.sum(axis=1)
    owner = np.repeat(np.arange(n), n_words)
    src = rng.random(owner.size)
    second = np.where(cat.secondary >= 0, cat.secondary, cat.topic)
    word_topic = np.where(src < 0.7, cat.topic[owner], second[owner])
    zipf = 1.0 / np.arange(1, WORDS_PER_TOPIC + 1) ** 0.8
    word = words[word_topic, rng.choice(WORDS_PER_TOPIC, size=owner.size, p=zipf / zipf.sum())]
    common = src >= 0.85
    word[common] = np.array(_COMMON_WORDS, dtype=object)[rng.integers(len(_COMMON_WORDS), size=int(common.sum()))]
    word_list = word.tolist()
    # Tags: 1-3 of the dominant topic's set, one of the secondary's, sometimes a generic one.
    n_tags = rng.integers(1, 4, size=n)
    tag_order = np.argsort(rng.random((n, min(len(t) for t in tag_sets))), axis=1)
    sec_tag = rng.integers(8, size=n)
    generic = np.where(rng.random(n) < 0.15, rng.integers(len(_GENERIC_TAGS), size=n), -1)
    created = cat.created.round(3).tolist()
    items: list[dict] = []
    pos = 0
    for i in range(n):
        sentences = []
        for length in sent_len[i, : n_sent[i]].tolist():
            chunk = word_list[pos : pos + length]
            pos += length
            sentences.append(" ".join(chunk).capitalize() + ".")
        own = tag_sets[cat.topic[i]]
        tags = [own[j] for j in tag_order[i, : n_tags[i]].tolist()]
        if cat.secondary[i] >= 0:
            other = tag_sets[cat.secondary[i]]
            tags.append(other[sec_tag[i] % len(other)])
        if generic[i] >= 0:
            tags.append(_GENERIC_TAGS[generic[i]])
        items.append({
            "id": item_ids[i],
            "type": CONTENT_TYPES[cat.kind[i]],
            "text": " ".join(sentences),
            "author_id": author_ids[cat.author[i]],
            "created_at": created[i],
            "tags": tags,
        })
    return items


def _pseudo_words(rng: np.random.Generator, count: int, *, taken: set[str]) -> list[str]:
    """Pronounceable made-up words (consonant-vowel syllables), distinct from each other."""
    out: list[str] = []
    while len(out) < count:
        n_syl = int(rng.integers(2, 4))
        w = "".join(
            _SYLLABLE_ONSETS[int(rng.integers(len(_SYLLABLE_ONSETS)))] + _SYLLABLE_VOWELS[int(rng.integers(len(_SYLLABLE_VOWELS)))]
            for _ in range(n_syl)
        )
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """One JSON object per line; returns the number of rows written."""
    n = 0
    with path.open("wb") as f:
        for n, row in enumerate(rows, 1):
            f.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
    return n


def write_world(world: World, out: Path) -> None:
    """items.jsonl and signals.jsonl (readable by `--format jsonl`), and the ground truth in truth.npz."""
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "items.jsonl", world.items)
    write_jsonl(out / "signals.jsonl", world.signals)
    np.savez_compressed(
        out / "truth.npz",
        topic_names=np.array(world.topic_names),
        user_ids=np.array(world.user_ids),
        item_ids=np.array([i["id"] for i in world.items]),
        user_topics=world.user_topics,
        user_topics_start=world.user_topics_start,
        item_topic=world.item_topic,
        item_secondary_topic=world.item_secondary_topic,
        item_popularity=world.item_popularity,
        start_end=np.array([world.start, world.end]),
    )
