"""The storage node's ops and news.

    create       Create                 -> ObjectInfo
    create_many  CreateMany             -> CreateManyReply (per-name errors)
    populate     Populate               -> {size}
    put          Put                    -> ObjectInfo + node (once durable)
    finish       Finish                 -> ObjectInfo + node (once durable)
    read         Read                   -> ReadReply
    delegate     DelegateObject         -> ObjectInfo
    stat         ObjectRef              -> ObjectInfo
    list         ListObjects            -> ObjectInventory
    delete       DeleteObjects          -> {deleted, missing}
    replicate    Replicate              -> ReplicateReply (copies run in the background)
    usage        (no body)              -> the store's usage map
    events       created, partial, finished (with `data` when small), delegated, deleted: ObjectInfo

Object bytes (`data`) are bytes, or a memoryview of a received frame when
they came attached (bus.codec): records hold them as they are, never copied.
"""

from __future__ import annotations

from typing import Any

from weft.bus.codec import attach
from weft.bus.endpoint import is_connectable

from .enums import ObjectState
from .fields import (
    INT_MAX,
    bad,
    body_map,
    enum_field,
    epoch_field,
    flag,
    int_field,
    object_field,
    opt_str,
    put_epoch,
    str_list,
    valid_job_id,
    valid_output,
)
from .record import record

MAX_READ = 1 << 20
_OBJECT_STATES = ObjectState._value2member_map_
Bytes = bytes | bytearray | memoryview


def _data(op: str, body: dict) -> Bytes:
    d = body.get("data", b"")
    if not isinstance(d, bytes | bytearray | memoryview):
        bad(op, "data", f"must be bytes, got {type(d).__name__}")
    return d


def info_wire(name: str, state: ObjectState, size: int, token: int, target: str | None) -> dict[str, Any]:
    """The wire form of an object's info: the store's and ObjectInfo's one shape."""
    return {"name": name, "state": state.value, "size": size, "token": token, "target": target}


@record
class ObjectInfo:
    """An object as storage reports it: replies to create, put, finish,
    stat, delegate, list entries, and the object events. `data` (a small
    finished object's bytes) rides in `finished` events; `node` (where it
    landed) in put and finish replies."""

    name: str
    state: ObjectState
    size: int = 0
    token: int = 0
    target: str | None = None
    data: Bytes | None = None
    node: str | None = None

    def to_wire(self) -> dict[str, Any]:
        d = info_wire(self.name, self.state, self.size, self.token, self.target)
        if self.data is not None:
            d["data"] = self.data
        if self.node is not None:
            d["node"] = self.node
        return d

    @classmethod
    def from_wire(cls, d: Any, op: str = "object info") -> ObjectInfo:
        # Object news reaches the coordinator thousands of times a second:
        # one `get` and one type test per field on the good path; the readers
        # of fields.py only word the error.
        if type(d) is not dict:
            body_map(op, d)
        get = d.get
        name = get("name")
        if type(name) is str:
            job, sep, output = name.partition("/")
            good = sep and valid_job_id(job) and valid_output(output)
        else:
            good = False
        if not good:
            object_field(op, d)
        v = get("state")
        try:  # a member (a record not yet encoded) finds itself too
            state = _OBJECT_STATES.get(v)
        except TypeError:  # unhashable
            state = None
        if state is None:
            if v is None:
                bad(op, "state", "is required")
            state = enum_field(op, d, "state", ObjectState)
        size, token = get("size", 0), get("token", 0)
        if type(size) is not int or not 0 <= size <= INT_MAX:
            int_field(op, d, "size")
        if type(token) is not int or not 0 <= token <= INT_MAX:
            int_field(op, d, "token")
        data, target, node = get("data"), get("target"), get("node")
        if data is not None and type(data) is not bytes and not isinstance(data, memoryview):
            bad(op, "data", f"must be bytes, got {type(data).__name__}")
        if target is not None and type(target) is not str:
            opt_str(op, d, "target")
        if node is not None and type(node) is not str:
            opt_str(op, d, "node")
        return cls(name, state, size, token, target, data, node)


@record
class Create:
    """`create`: an empty object under fencing token `token`; `replace` makes
    a retry's create replace (and fence off) what an earlier attempt left."""

    name: str
    token: int = 0
    replace: bool = False
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "token": self.token}
        if self.replace:
            d["replace"] = True
        return put_epoch(d, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> Create:
        op = "create"
        b = body_map(op, body)
        return cls(object_field(op, b), int_field(op, b, "token", 0), bool(b.get("replace", False)),
                   epoch_field(op, b))


@record
class CreateMany:
    """`create_many`: `{items: [[name, token], ...], replace}`. Items are
    judged one by one (`item()`), so one bad name does not fail the batch."""

    items: list
    replace: bool = False
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return put_epoch({"items": self.items, "replace": self.replace}, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> CreateMany:
        op = "create_many"
        b = body_map(op, body)
        items = b.get("items")
        if type(items) is not list:
            bad(op, "items", "must be a list of [name, token]")
        return cls(items, bool(b.get("replace", False)), epoch_field(op, b))

    @staticmethod
    def item(item: Any) -> tuple[str, int]:
        if (type(item) not in (list, tuple) or len(item) != 2 or type(item[1]) is not int
                or not 0 <= item[1] < 1 << 63):
            bad("create_many", "items", f"entry must be [name, token], got {item!r}")
        object_field("create_many", {"name": item[0]})
        return item[0], item[1]

    @staticmethod
    def key(item: Any) -> str:
        """The name a (possibly malformed) item's error is filed under."""
        return str(item[0] if type(item) in (list, tuple) and item else item)


@record
class CreateManyReply:
    """`errors` maps a name to `{code, message, info?}`; `info` is the
    object's when it is already finished (code `immutable`), so the
    coordinator adopts it instead of running the job again."""

    created: list[dict[str, Any]]
    errors: dict[str, dict[str, Any]]

    def to_wire(self) -> dict[str, Any]:
        return {"created": self.created, "errors": self.errors}

    @classmethod
    def from_wire(cls, body: Any) -> CreateManyReply:
        op = "create_many reply"
        b = body_map(op, body)
        created, errors = b.get("created", []), b.get("errors") or {}
        if type(created) is not list:
            bad(op, "created", "must be a list")
        if type(errors) is not dict or not all(type(e) is dict for e in errors.values()):
            bad(op, "errors", "must map names to {code, message}")
        return cls(created, errors)


@record
class Populate:
    """`populate`: write `data` at `offset` (default: the end) of a partial object."""

    name: str
    data: Bytes
    token: int = 0
    offset: int | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "data": attach(self.data), "token": self.token}
        if self.offset is not None:
            d["offset"] = self.offset
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Populate:
        op = "populate"
        b = body_map(op, body)
        return cls(object_field(op, b), _data(op, b), int_field(op, b, "token", 0),
                   int_field(op, b, "offset", None, nullable=True))


@record
class Put:
    """`put`: create-or-reuse, write and finish a small object in one call.
    `quiet`: the writer reports the finished object itself, so storage's own
    `finished` event need not wake the coordinator. `via`: the bytes (`size`
    of them) were passed as a memory file on storage's descriptor socket
    under this key (storage/fdchannel.py), and `data` is empty."""

    name: str
    data: Bytes
    token: int = 0
    quiet: bool = False
    via: bytes | None = None
    size: int = 0

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "data": attach(self.data), "token": self.token}
        if self.quiet:
            d["quiet"] = True
        if self.via is not None:
            d["via"], d["size"] = self.via, self.size
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Put:
        op = "put"
        b = body_map(op, body)
        put = cls(object_field(op, b), _data(op, b), int_field(op, b, "token", 0), flag(b, "quiet"))
        via = b.get("via")
        if via is not None:
            if not isinstance(via, bytes) or len(via) != 16:
                bad(op, "via", f"must be 16 bytes, got {via!r:.40}")
            put.via, put.size = via, int_field(op, b, "size", 0, minimum=1)
        return put


@record
class Finish:
    """`finish`: the object is complete at `size` bytes (checked when given)."""

    name: str
    token: int = 0
    size: int | None = None
    quiet: bool = False

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "token": self.token}
        if self.size is not None:
            d["size"] = self.size
        if self.quiet:
            d["quiet"] = True
        return d

    @classmethod
    def from_wire(cls, body: Any) -> Finish:
        op = "finish"
        b = body_map(op, body)
        return cls(object_field(op, b), int_field(op, b, "token", 0),
                   int_field(op, b, "size", None, nullable=True), flag(b, "quiet"))


@record
class Read:
    """`read`: up to `length` bytes (at most MAX_READ) from `offset`, following
    delegation on this node."""

    name: str
    offset: int = 0
    length: int = MAX_READ

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "offset": self.offset, "length": self.length}

    @classmethod
    def from_wire(cls, body: Any) -> Read:
        op = "read"
        b = body_map(op, body)
        return cls(object_field(op, b), int_field(op, b, "offset", 0),
                   int_field(op, b, "length", MAX_READ, minimum=1))


@record
class ReadReply:
    """`name` is the object read (the end of a delegation chain); `state`
    `delegated` with `target` means the chain leaves this node."""

    name: str
    state: ObjectState
    data: Bytes = b""
    eof: bool = False
    size: int | None = None
    target: str | None = None

    def to_wire(self) -> dict[str, Any]:
        if self.state == ObjectState.DELEGATED:
            return {"name": self.name, "state": self.state, "target": self.target, "data": b"", "eof": False}
        return {"name": self.name, "state": self.state, "size": self.size, "data": attach(self.data),
                "eof": self.eof}

    @classmethod
    def from_wire(cls, body: Any) -> ReadReply:
        op = "read reply"
        b = body_map(op, body)
        name = b.get("name")
        if type(name) is not str:
            bad(op, "name", "must be a string")
        state = enum_field(op, b, "state", ObjectState)
        if state is None:
            bad(op, "state", "is required")
        data = b.get("data", b"")
        if not isinstance(data, bytes | memoryview):
            bad(op, "data", f"must be bytes, got {type(data).__name__}")
        size = b.get("size")
        if size is not None and type(size) is not int:
            bad(op, "size", "must be an integer")
        return cls(name, state, data, b.get("eof") is True, size, opt_str(op, b, "target"))


@record
class DelegateObject:
    """`delegate`: object `name` now stands for object `target`."""

    name: str
    target: str
    token: int = 0
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return put_epoch({"name": self.name, "target": self.target, "token": self.token}, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> DelegateObject:
        op = "delegate"
        b = body_map(op, body)
        return cls(object_field(op, b), object_field(op, b, "target"), int_field(op, b, "token", 0),
                   epoch_field(op, b))


@record
class ObjectRef:
    """`stat`: `{name}`."""

    name: str

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_wire(cls, body: Any, op: str = "stat") -> ObjectRef:
        return cls(object_field(op, body_map(op, body)))


@record
class ListObjects:
    """`list` on a storage node: objects under `prefix`, in `states` if given;
    with `times`, each entry also has `at`: when it was finished (created,
    if not finished), seconds since the epoch (`listed_times` reads them)."""

    prefix: str = ""
    states: frozenset[ObjectState] | None = None
    times: bool = False

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.prefix:
            d["prefix"] = self.prefix
        if self.states is not None:
            d["states"] = sorted(self.states)
        if self.times:
            d["times"] = True
        return d

    @classmethod
    def from_wire(cls, body: Any) -> ListObjects:
        op = "list"
        b = body_map(op, body, optional=True)
        prefix = b.get("prefix", "")
        if type(prefix) is not str:
            bad(op, "prefix", "must be a string")
        states = b.get("states")
        if states is not None:
            known = ObjectState._value2member_map_
            if type(states) is not list or not all(type(s) is str and s in known for s in states):
                bad(op, "states", f"must be a list of {[str(s) for s in ObjectState]}")
            states = frozenset(known[s] for s in states)
        return cls(prefix, states, flag(b, "times"))


def listed_times(body: Any) -> list[tuple[str, int, float]]:
    """(name, size, at) of each entry of a `list` reply asked with `times`."""
    op = "list reply"
    objects = body_map(op, body).get("objects")
    if type(objects) is not list:
        bad(op, "objects", "must be a list")
    out = []
    for o in objects:
        at = o.get("at") if type(o) is dict else None
        if type(at) not in (int, float):
            bad(op, "at", f"must be seconds since the epoch, got {at!r}")
        info = ObjectInfo.from_wire(o, op)
        out.append((info.name, info.size, float(at)))
    return out


@record
class Prune:
    """`prune` on the coordinator: delete the content objects (`sha256-...`)
    that nothing it keeps refers to and that were finished longer than
    `recent` seconds ago; `dry_run`: say which, delete none."""

    recent: float = 3600.0
    dry_run: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"recent": self.recent, "dry_run": self.dry_run}

    @classmethod
    def from_wire(cls, body: Any) -> Prune:
        op = "prune"
        b = body_map(op, body, optional=True)
        recent = b.get("recent", 3600.0)
        if type(recent) not in (int, float) or not 0 <= recent < float("inf"):
            bad(op, "recent", f"must be seconds >= 0, got {recent!r}")
        return cls(float(recent), flag(b, "dry_run"))


@record
class PruneReply:
    """What a prune deleted (or, dry, would delete): objects and their bytes,
    the first PRUNE_NAMES of their names, the content objects still referred
    to, and the storage nodes not asked (not ready: their copies stay)."""

    objects: int
    bytes: int
    names: list[str]
    referenced: int
    skipped: list[str]
    dry_run: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"objects": self.objects, "bytes": self.bytes, "names": self.names, "referenced": self.referenced,
                "skipped": self.skipped, "dry_run": self.dry_run}

    @classmethod
    def from_wire(cls, body: Any) -> PruneReply:
        op = "prune reply"
        b = body_map(op, body)
        return cls(int_field(op, b, "objects"), int_field(op, b, "bytes"),
                   str_list(op, b, "names", what="object names"), int_field(op, b, "referenced"),
                   str_list(op, b, "skipped", what="node ids"), flag(b, "dry_run"))


PRUNE_NAMES = 1000  # names listed in a reply at most


@record
class ObjectInventory:
    """The answer to `list` on a storage node, with where its event queue stands."""

    objects: list[ObjectInfo]
    next: int
    inc: str

    def to_wire(self) -> dict[str, Any]:
        return {"objects": [o.to_wire() for o in self.objects], "next": self.next, "inc": self.inc}

    @classmethod
    def from_wire(cls, body: Any) -> ObjectInventory:
        op = "list reply"
        b = body_map(op, body)
        objects = b.get("objects")
        if type(objects) is not list:
            bad(op, "objects", "must be a list")
        inc = b.get("inc")
        if type(inc) is not str:
            bad(op, "inc", "must be a string")
        return cls([ObjectInfo.from_wire(o, op) for o in objects], int_field(op, b, "next", 0), inc)


@record
class DeleteObjects:
    """`delete` on a storage node: `{names: [...]}`, or `{name}` for one."""

    names: list[str]
    single: bool = False
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        d = {"name": self.names[0]} if self.single else {"names": self.names}
        return put_epoch(d, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> DeleteObjects:
        op = "delete"
        b = body_map(op, body)
        if type(b.get("names")) is list:
            names = str_list(op, b, "names", what="object names")
            for n in names:
                object_field(op, {"names": n}, "names")
            return cls(names, False, epoch_field(op, b))
        return cls([object_field(op, b)], True, epoch_field(op, b))


@record
class Replicate:
    """`replicate` on a storage node: copy each named finished object from
    the storage node at its endpoint (`items`: [[name, source endpoint]]).
    The node answers at once (ReplicateReply) and copies in the background;
    a copy's end is news on its event queue: `finished` when it landed,
    `deleted` when it failed (its partial bytes removed)."""

    items: list[tuple[str, str]]
    epoch: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return put_epoch({"items": [[n, s] for n, s in self.items]}, self.epoch)

    @classmethod
    def from_wire(cls, body: Any) -> Replicate:
        op = "replicate"
        b = body_map(op, body)
        raw = b.get("items")
        if type(raw) is not list or not raw:
            bad(op, "items", "must be a non-empty list of [object name, source endpoint]")
        items = []
        for item in raw:
            if type(item) is not list or len(item) != 2 or not is_connectable(item[1]):
                bad(op, "items", f"must be [object name, source endpoint] pairs, got {item!r}")
            items.append((object_field(op, {"items": item[0]}, "items"), item[1]))
        return cls(items, epoch_field(op, b))


@record
class ReplicateReply:
    """`accepted`: copies started; `refused` maps a name to `{code, message}`
    (code `exists` when the node holds the object already)."""

    accepted: list[str]
    refused: dict[str, dict[str, Any]]

    def to_wire(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "refused": self.refused}

    @classmethod
    def from_wire(cls, body: Any) -> ReplicateReply:
        op = "replicate reply"
        b = body_map(op, body)
        accepted = str_list(op, b, "accepted", what="object names")
        refused = b.get("refused") or {}
        if type(refused) is not dict or not all(type(e) is dict for e in refused.values()):
            bad(op, "refused", "must map names to {code, message}")
        return cls(accepted, refused)
