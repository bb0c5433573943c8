"""Ticket snapshots: a long ticket loads from its latest snapshot plus the events after it.

A snapshot holds a ticket's state except its comment thread, of which it keeps only the length:
a command needs the length (the next comment id) and the events after the snapshot append to
it, so a long thread is never read; the first use beyond that (a redaction, `as_dict`) loads it
by replaying the events up to the snapshot's version. So a snapshot stays small (a command on a
1,000-event ticket reads ~1 KB, not ~300 KB) and never holds a comment's text, which keeps
privacy erasure (ticketing/store/erasure.py) out of its way.

A snapshot is a cache of state derived from events, never a source of truth: it lives in the
library's separate snapshots table (`stored_snapshots` on SQLite, `ticketing_snapshots` on
PostgreSQL), so the notification log, the relay, `rebuild`, the hash chain and every history
or as-of read keep seeing events only. A snapshot is used only when it provably belongs to the
events beside it and to the code reading it; otherwise the ticket is replayed in full.

The snapshot class's topic is stored with each record. It was written as
`commands.snapshots:TicketSnapshot` before the store adapter moved here, so that topic stays
registered for this class; the class name must not change.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import inspect
from collections.abc import Callable, Iterator, MutableSequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import AggregateRecorder, IntegrityError, StoredEvent
from eventsourcing.utils import get_topic, register_topic, resolve_topic

from ticketing.domain.events import CommentRedacted
from ticketing.store.engine import engine_of

CODE_KEY = "_code_"
"""Fingerprint of the code that computed the state (see `state_code`)."""
TYPED_KEY = "_typed_"
"""Names of the attributes holding tagged values (enums, sets, tuples) to restore."""
LAZY_ATTRIBUTES = ("comments",)
"""List attributes kept out of snapshots but for their length (see `LazyList`)."""
_ENUM, _SET, _TUPLE, _LAZY = "__enum__", "__set__", "__tuple__", "__lazy__"
_PLAIN = (str, int, float, bool, type(None))
_TRANSCODED = (UUID, Decimal)  # and datetime: the application's transcoder handles these
_STATE_MODULES = (
    "ticketing.domain.ticket",
    "ticketing.domain.events",
    "ticketing.domain.recording",
    "ticketing.domain.values",
    "ticketing.domain.status_rules",
    "ticketing.store.snapshots",
)
COMMENT_REDACTED_TOPIC = get_topic(CommentRedacted)


class UnsnapshottableError(TypeError):
    """The ticket's state holds a value the snapshot codec cannot restore exactly."""


@cache
def state_code() -> str:
    """A digest of the source that turns events into ticket state.

    A snapshot taken by other code (a deploy that changed `evolve`, an event upcaster or an
    enum) might hold state the current code would not compute, or miss a new attribute, so it
    is ignored and replaced; the first load after such a deploy replays the ticket in full."""
    digest = hashlib.sha256()
    for name in _STATE_MODULES:
        module = importlib.import_module(name)
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # no source shipped: fall back to the module's identity
            digest.update(f"{name}:{getattr(module, '__file__', '')}".encode())
    return digest.hexdigest()[:16]


class TicketSnapshot(Snapshot):
    """A ticket's state at one version, in plain JSON-friendly values.

    The library's `Snapshot` stores `vars(aggregate)` as it is; a ticket holds str-enums (which
    would come back as plain `str`) and sets of tuples (which JSON cannot hold), so values are
    tagged on the way in and restored on the way out."""

    @classmethod
    def take(cls, aggregate: Any) -> TicketSnapshot:
        state: dict[str, Any] = {}
        typed: list[str] = []
        for name, value in vars(aggregate).items():
            if name in ("_id", "_version", "_pending_events"):
                continue
            if name in LAZY_ATTRIBUTES and isinstance(value, list | LazyList):
                encoded, tagged = {_LAZY: len(value)}, True
            else:
                encoded, tagged = _encode(value)
            state[name] = encoded
            if tagged:
                typed.append(name)
        state[TYPED_KEY] = typed
        state[CODE_KEY] = state_code()
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=cls.create_timestamp(),
            topic=get_topic(type(aggregate)),
            state=state,
        )

    @property
    def is_current(self) -> bool:
        """Taken by the code running now (see `state_code`)."""
        return bool(self.state.get(CODE_KEY) == state_code())

    def mutate(self, _: Any) -> Any:
        """The ticket as it was at this snapshot's version; its lazy lists must be bound (see
        `bind_lazy_lists`) before anything reads past their length."""
        state = dict(self.state)
        state.pop(CODE_KEY, None)
        for name in state.pop(TYPED_KEY, ()):
            state[name] = _decode(state[name])
        state["_id"] = self.originator_id
        state["_version"] = self.originator_version
        state["_pending_events"] = []
        aggregate = object.__new__(resolve_topic(self.topic))
        object.__setattr__(aggregate, "__dict__", state)
        return aggregate


register_topic("commands.snapshots:TicketSnapshot", TicketSnapshot)  # written before the move


def _encode(value: Any) -> tuple[Any, bool]:
    """A JSON-friendly form of `value`, and whether it needs `_decode` to come back exactly."""
    if isinstance(value, Enum):  # before str: str-enums are strings too
        return {_ENUM: [get_topic(type(value)), value.value]}, True
    if type(value) in _PLAIN or type(value) is datetime or isinstance(value, _TRANSCODED):
        return value, False
    if isinstance(value, list | tuple | set):
        pairs = [_encode(v) for v in value]
        items = [p[0] for p in pairs]
        tagged = any(p[1] for p in pairs)
        if isinstance(value, list):
            return items, tagged
        if isinstance(value, tuple):
            return {_TUPLE: items}, True
        if type(value) is set:
            return {_SET: sorted(items, key=repr)}, True
    if type(value) is dict:
        encoded: dict[str, Any] = {}
        tagged = False
        for key, item in value.items():
            if type(key) is not str or key in (_ENUM, _SET, _TUPLE, _LAZY):
                raise UnsnapshottableError(f"dict key {key!r} would not come back as it was")
            encoded[key], item_tagged = _encode(item)
            tagged = tagged or item_tagged
        return encoded, tagged
    raise UnsnapshottableError(f"cannot snapshot a {type(value).__qualname__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        if _ENUM in value:
            topic, raw = value[_ENUM]
            return resolve_topic(topic)(raw)
        if _SET in value:
            return {_decode(v) for v in value[_SET]}
        if _TUPLE in value:
            return tuple(_decode(v) for v in value[_TUPLE])
        if _LAZY in value:
            return LazyList(value[_LAZY])
    return {k: _decode(v) for k, v in value.items()}


class LazyList(MutableSequence[Any]):
    """A list restored from a snapshot by its length alone: `len` and `append` work at once,
    anything else loads the items first (from events, through the bound loader).

    Equal to the list it stands for; a deep copy is a plain list."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, count: int) -> None:
        self._count = count
        self._added: list[Any] = []
        self._items: list[Any] | None = None
        self._load: Callable[[], list[Any]] | None = None

    def bind(self, load: Callable[[], list[Any]]) -> None:
        """`load()` returns the items at the snapshot's version."""
        self._load = load

    @property
    def loaded(self) -> bool:
        return self._items is not None

    def _list(self) -> list[Any]:
        if self._items is None:
            if self._load is None:
                raise RuntimeError("a snapshot's lazy list was read before it was bound")
            base = list(self._load())
            if len(base) != self._count:
                raise RuntimeError(f"snapshot said {self._count} items, events gave {len(base)}")
            self._items = base + self._added
            self._added = []
        return self._items

    def __len__(self) -> int:
        if self._items is not None:
            return len(self._items)
        return self._count + len(self._added)

    def append(self, value: Any) -> None:
        (self._added if self._items is None else self._items).append(value)

    def insert(self, index: int, value: Any) -> None:
        self._list().insert(index, value)

    def __getitem__(self, index: Any) -> Any:
        return self._list()[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._list()[index] = value

    def __delitem__(self, index: Any) -> None:
        del self._list()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyList):
            other = other._list()
        return self._list() == other

    def __repr__(self) -> str:
        return repr(self._list())

    def __copy__(self) -> list[Any]:
        return list(self._list())

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return copy.deepcopy(self._list(), memo)


def bind_lazy_lists(aggregate: Any, load: Callable[[], Any]) -> None:
    """Bind the aggregate's lazy lists to `load()`, which returns the aggregate at the
    snapshot's version replayed from events (called at most once, on first need)."""
    lazy = {name: v for name, v in vars(aggregate).items() if isinstance(v, LazyList)}
    if not lazy:
        return
    loaded: list[Any] = []

    def full() -> Any:
        if not loaded:
            loaded.append(load())
        return loaded[0]

    def loader(name: str) -> Callable[[], list[Any]]:
        return lambda: list(getattr(full(), name))

    for name, value in lazy.items():
        value.bind(loader(name))


# --- the snapshots table --------------------------------------------------------------------


def replace_snapshot(recorder: AggregateRecorder, stored: StoredEvent) -> None:
    """Write a ticket's snapshot in place of its older ones (and of one at the same version,
    which may come from other code), in one transaction: one per ticket is all a load needs.
    A snapshot of the same version written meanwhile by another process wins."""
    engine = engine_of(recorder)
    rec: Any = recorder
    table = rec.events_table_name
    if engine == "sqlite":
        with rec.datastore.transaction(commit=True) as cursor:
            key = cast(UUID, stored.originator_id).hex
            cursor.execute(
                f"DELETE FROM {table} WHERE originator_id = ? AND originator_version <= ?",
                (key, stored.originator_version),
            )
            cursor.execute(
                f"INSERT OR IGNORE INTO {table} VALUES (?, ?, ?, ?)",
                (key, stored.originator_version, stored.topic, stored.state),
            )
    elif engine == "postgres":
        name = f'"{rec.datastore.schema}"."{table}"'
        with rec.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"DELETE FROM {name} WHERE originator_id = %s AND originator_version <= %s",
                (stored.originator_id, stored.originator_version),
            )
            cursor.execute(
                f"INSERT INTO {name} (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (stored.originator_id, stored.originator_version, stored.topic, stored.state),
            )
    else:  # in memory: nothing outlives the process, so older snapshots may stay
        with contextlib.suppress(IntegrityError):
            recorder.insert_events([stored])


def delete_snapshots(recorder: AggregateRecorder, cursor: Any, aggregate_id: UUID) -> None:
    """Delete every snapshot of one aggregate inside the caller's transaction (erasure).

    A store written before snapshots existed, opened without creating tables, has no
    snapshots table: then there is nothing to delete."""
    engine = engine_of(recorder)
    rec: Any = recorder
    table = rec.events_table_name
    if engine == "sqlite":
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        if cursor.fetchone() is not None:
            cursor.execute(f"DELETE FROM {table} WHERE originator_id = ?", (aggregate_id.hex,))
    elif engine == "postgres":
        name = f'"{rec.datastore.schema}"."{table}"'
        cursor.execute("SELECT to_regclass(%s) AS found", (name,))
        row = cursor.fetchone()
        if row is not None and row["found"] is not None:
            cursor.execute(f"DELETE FROM {name} WHERE originator_id = %s", (aggregate_id,))
