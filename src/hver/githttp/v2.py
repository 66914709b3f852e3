"""git's wire protocol version 2 for fetches (`git-upload-pack`, stateless over HTTP).

A client that sends `Git-Protocol: version=2` gets the capability advertisement
(`advertise`) and then one command per request (`serve`): `ls-refs` (the refs, with
symbolic and peeled targets) and `fetch` (negotiation, shallow boundaries, filters, and
the pack, side-band multiplexed). Version 2 lets a fetch want any object the repository
holds, not only ref tips: that is what a partial clone (`--filter=blob:none`) needs to
fetch the blobs it skipped, one checkout at a time.

Packs are built with dulwich (`MissingObjectFinder`, `write_pack_from_container`,
`object_filters`) and written through `write` as they are produced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from dulwich.object_filters import (
    CombineFilter,
    FilterSpec,
    SparseOidFilter,
    TreeDepthFilter,
    filter_pack_objects,
    filter_pack_objects_with_paths,
    parse_filter_spec,
)
from dulwich.object_store import BaseObjectStore, MissingObjectFinder, find_shallow
from dulwich.objects import ObjectID, RawObjectID, Tag, sha_to_hex, valid_hexsha
from dulwich.pack import (
    REF_DELTA,
    PackHint,
    UnpackedObject,
    full_unpacked_object,
    write_pack_data,
)
from dulwich.refs import Ref
from dulwich.repo import Repo as DulwichRepo

from hver import __version__

FLUSH, DELIM = b"0000", b"0001"
MAX_PKT = 65520
BAND_DATA, BAND_PROGRESS = b"\x01", b"\x02"
CAPABILITIES = (b"version 2", f"agent=hver/{__version__}".encode(), b"ls-refs=unborn",
                b"fetch=shallow filter", b"server-option", b"object-format=sha1")
MAX_ARGS = 1_000_000  # lines in one request: wants and haves of the largest repos


class ProtocolError(Exception):
    """A request this server cannot take: answered with git's ERR line."""


def pkt(line: bytes) -> bytes:
    return b"%04x" % (len(line) + 4) + line


def advertise(write: Callable[[bytes], Any]) -> None:
    """The reply to `GET info/refs?service=git-upload-pack` from a version 2 client."""
    write(b"".join(pkt(cap + b"\n") for cap in CAPABILITIES) + FLUSH)


@dataclass
class _Request:
    command: bytes
    capabilities: list[bytes] = field(default_factory=list)
    args: list[bytes] = field(default_factory=list)


def _read_request(read: Callable[[int], bytes]) -> _Request | None:
    """One command: `command=X`, capability lines, a delimiter, arguments, a flush."""
    section: list[bytes] = []
    sections: list[list[bytes]] = []
    count = 0
    while True:
        head = read(4)
        if not head:
            if not sections and not section:
                return None  # an empty body: nothing asked
            raise ProtocolError("the request ends before its flush packet")
        try:
            size = int(head, 16)
        except ValueError:
            raise ProtocolError(f"bad packet length {head!r}") from None
        if size == 0:
            sections.append(section)
            break
        if size == 1:
            sections.append(section)
            section = []
            continue
        if size < 4 or size > MAX_PKT:
            raise ProtocolError(f"bad packet length {head!r}")
        data = read(size - 4)
        if len(data) != size - 4:
            raise ProtocolError("the request ends inside a packet")
        count += 1
        if count > MAX_ARGS:
            raise ProtocolError("too many lines in one request")
        section.append(data.rstrip(b"\n"))
    caps = sections[0]
    if not caps or not caps[0].startswith(b"command="):
        raise ProtocolError("a version 2 request starts with command=")
    args = [line for more in sections[1:] for line in more]
    return _Request(caps[0].removeprefix(b"command="), caps[1:], args)


def serve(repo: DulwichRepo, read: Callable[[int], bytes], write: Callable[[bytes], Any]
          ) -> None:
    """Answer one version 2 `POST git-upload-pack`."""
    try:
        request = _read_request(read)
        if request is None:
            write(FLUSH)
            return
        if request.command == b"ls-refs":
            _ls_refs(repo, request.args, write)
        elif request.command == b"fetch":
            _Fetch(repo, request.args, write).run()
        else:
            raise ProtocolError(f"unknown command {request.command.decode(errors='replace')}")
    except ProtocolError as exc:
        write(pkt(b"ERR " + str(exc).encode("utf-8", "replace")[:1000] + b"\n"))
    except KeyError as exc:  # an object the request names is not in the repository
        write(pkt(b"ERR upload-pack: not our object " + str(exc).encode()[:100] + b"\n"))
    except ValueError as exc:  # a filter dulwich cannot apply to these objects
        write(pkt(b"ERR " + str(exc).encode("utf-8", "replace")[:500] + b"\n"))


def _ls_refs(repo: DulwichRepo, args: list[bytes], write: Callable[[bytes], Any]) -> None:
    peel = b"peel" in args
    symrefs = b"symrefs" in args
    unborn = b"unborn" in args
    prefixes = [a.removeprefix(b"ref-prefix ") for a in args if a.startswith(b"ref-prefix ")]
    refs = repo.refs.as_dict()
    targets = repo.refs.get_symrefs()
    lines = []
    head = targets.get(Ref(b"HEAD"))
    names = sorted(refs)
    if Ref(b"HEAD") in refs:
        names = [Ref(b"HEAD")] + [n for n in names if n != b"HEAD"]
    elif unborn and head is not None and (not prefixes or any(
            b"HEAD".startswith(p) for p in prefixes)):
        lines.append(b"unborn HEAD symref-target:" + head + b"\n")
    for name in names:
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        line = refs[name] + b" " + name
        if symrefs and name in targets:
            line += b" symref-target:" + targets[name]
        if peel:
            peeled = repo.get_peeled(name)
            if peeled is not None and peeled != refs[name]:
                line += b" peeled:" + peeled
        lines.append(line + b"\n")
    write(b"".join(pkt(line) for line in lines) + FLUSH)


class _Fetch:
    def __init__(self, repo: DulwichRepo, args: list[bytes],
                 write: Callable[[bytes], Any]) -> None:
        self.repo, self.store, self.write = repo, repo.object_store, write
        self.wants: list[ObjectID] = []
        self.haves: list[ObjectID] = []
        self.shallows: list[ObjectID] = []
        self.depth: int | None = None
        self.filter: FilterSpec | None = None
        self.done = self.no_progress = self.include_tag = self.relative = False
        for arg in args:
            self._arg(arg)

    def _oid(self, value: bytes) -> ObjectID:
        if not valid_hexsha(value):
            raise ProtocolError(f"not an object id: {value.decode(errors='replace')}")
        return ObjectID(value)

    def _arg(self, arg: bytes) -> None:
        name, _, value = arg.partition(b" ")
        if name == b"want":
            oid = self._oid(value)
            if oid not in self.store:
                raise ProtocolError(f"upload-pack: not our ref {value.decode()}")
            self.wants.append(oid)
        elif name == b"have":
            self.haves.append(self._oid(value))
        elif name == b"shallow":
            self.shallows.append(self._oid(value))
        elif name == b"deepen":
            if not value.isdigit() or int(value) < 1:
                raise ProtocolError(f"bad deepen {value.decode(errors='replace')}")
            self.depth = int(value)
        elif name == b"deepen-relative":
            self.relative = True
        elif name in (b"deepen-since", b"deepen-not"):
            raise ProtocolError(f"{name.decode()} is not supported: use --depth")
        elif name == b"filter":
            try:
                self.filter = parse_filter_spec(value, object_store=self.store)
            except ValueError as exc:
                raise ProtocolError(f"bad filter: {exc}") from None
        elif name == b"done":
            self.done = True
        elif name == b"no-progress":
            self.no_progress = True
        elif name == b"include-tag":
            self.include_tag = True
        elif name in (b"thin-pack", b"ofs-delta", b"sideband-all", b"wait-for-done"):
            pass  # packs are never thin; offsets are always used where they help
        else:
            raise ProtocolError(f"unknown fetch argument {name.decode(errors='replace')}")

    def run(self) -> None:
        if not self.wants:
            raise ProtocolError("a fetch wants at least one object")
        common = [h for h in self.haves if h in self.store]
        out = []
        if not self.done:
            out.append(pkt(b"acknowledgments\n"))
            out += [pkt(b"ACK " + h + b"\n") for h in common]
            if not common:
                self.write(b"".join([*out, pkt(b"NAK\n"), FLUSH]))
                return  # the client sends more haves, or `done`
            out += [pkt(b"ready\n"), DELIM]
        shallow = self._shallow_info(out)
        out.append(pkt(b"packfile\n"))
        self.write(b"".join(out))
        self._pack(common, shallow)
        self.write(FLUSH)

    def _shallow_info(self, out: list[bytes]) -> set[ObjectID]:
        """The shallow-info section, when the client is or asks to be shallow; returns
        the commits the pack stops at."""
        if self.depth is None and not self.shallows:
            return set()
        if self.depth is None:
            return set(self.shallows)
        if self.relative:  # `depth` more commits behind the client's own boundary
            shallow, not_shallow = find_shallow(self.store, self.shallows, self.depth + 1)
        else:
            shallow, not_shallow = find_shallow(self.store, self.wants, self.depth)
        lines = [b"shallow " + s + b"\n" for s in sorted(shallow - set(self.shallows))]
        lines += [b"unshallow " + s + b"\n" for s in sorted(set(self.shallows) & not_shallow)]
        out.append(pkt(b"shallow-info\n"))
        out += [pkt(line) for line in lines]
        out.append(DELIM)
        return shallow

    def _pack(self, common: list[ObjectID], shallow: set[ObjectID]) -> None:
        # A shallow client lacks what lies behind its boundary: its haves say nothing
        # about the commits a deeper fetch sends, so send all that the wants reach.
        haves = [] if self.shallows else common
        finder = MissingObjectFinder(self.store, haves, self.wants, shallow=shallow,
                                     get_tagged=self._tagged if self.include_tag else None)
        objects: list[tuple[ObjectID, PackHint | None]] = list(finder)
        if self.filter is not None:
            objects = self._filtered(objects)

        def band(data: bytes | bytearray | memoryview) -> None:
            view = memoryview(data)
            for i in range(0, len(view), MAX_PKT - 5):
                self.write(pkt(BAND_DATA + bytes(view[i:i + MAX_PKT - 5])))

        if not self.no_progress:
            self.write(pkt(BAND_PROGRESS + f"hver: {len(objects)} objects\n".encode()))
        todo = {oid for oid, _ in objects}
        write_pack_data(band, _as_stored(self.store, todo), num_records=len(todo),
                        object_format=self.repo.object_format)

    def _filtered(self, objects: list[tuple[ObjectID, PackHint | None]]
                  ) -> list[tuple[ObjectID, PackHint | None]]:
        spec = self.filter
        assert spec is not None
        if _needs_paths(spec):
            kept = filter_pack_objects_with_paths(self.store, self.wants, spec)
            return [(oid, None) for oid in kept]
        keep = set(filter_pack_objects(self.store, [oid for oid, _ in objects], spec))
        # What the client named itself it gets, whatever the filter says.
        keep.update(self.wants)
        return [(oid, hint) for oid, hint in objects if oid in keep]

    def _tagged(self) -> dict[ObjectID, ObjectID]:
        """Peeled commit -> tag, for the tags `include-tag` sends along."""
        out = {}
        for name, sha in self.repo.refs.as_dict(Ref(b"refs/tags")).items():
            obj: Any = self.store[sha]
            if isinstance(obj, Tag):
                peeled = self.repo.get_peeled(Ref(b"refs/tags/" + name))
                if peeled is not None:
                    out[ObjectID(peeled)] = ObjectID(sha)
        return out


def _as_stored(store: BaseObjectStore, todo: set[ObjectID]) -> Iterator[UnpackedObject]:
    """The objects of `todo` for a pack, read as the repo's packs hold them: inflated,
    not parsed and written out again, and a delta kept as one where its base is sent
    too. The rest (loose objects, deltas on bases the client is not sent) whole."""
    sent: set[ObjectID] = set()
    for unpacked in store.iter_unpacked_subset(todo, allow_missing=True,
                                               convert_ofs_delta=True):
        sha = sha_to_hex(RawObjectID(unpacked.sha()))
        if sha in sent or (unpacked.pack_type_num == REF_DELTA and sha_to_hex(
                RawObjectID(cast(bytes, unpacked.delta_base))) not in todo):
            continue
        sent.add(sha)
        yield unpacked
    for oid in todo - sent:
        yield full_unpacked_object(store[oid])


def _needs_paths(spec: FilterSpec) -> bool:
    if isinstance(spec, TreeDepthFilter | SparseOidFilter):
        return True
    if isinstance(spec, CombineFilter):
        return any(_needs_paths(f) for f in spec.filters)
    return False
