"""A Collection: the maps, programs and links of one loaded object, closed together."""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import BPFError
from .link import Link
from .maps import Map, ProgArray
from .program import Program

# Sections libbpf attaches without extra arguments.
_AUTO_ATTACH = ("tracepoint/", "tp/", "raw_tracepoint/", "raw_tp/", "tp_btf/", "fentry/", "fexit/",
                "fmod_ret/", "lsm/", "fentry.s/", "fexit.s/", "lsm.s/")


class Collection:
    """Live objects loaded together (what ``ObjectSpec.load(backend="kernel")`` returns).

    ``maps`` and ``programs`` are dicts by name; links made through
    :meth:`attach` / :meth:`attach_all` are owned too.  ``close()`` (or leaving
    ``with``) detaches links, then unloads programs and maps; pinned objects
    stay in the kernel.
    """

    def __init__(self, maps: dict[str, Map] | None = None, programs: dict[str, Program] | None = None):
        self.maps: dict[str, Map] = dict(maps or {})
        self.programs: dict[str, Program] = dict(programs or {})
        self.links: list[Link] = []
        self.closed = False
        for m in self.maps.values():
            if isinstance(m, ProgArray) and m.programs is None:
                m.bind(self.programs)  # prog_array[i] = "program name" resolves here

    def program(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise BPFError(f"no program {name!r} (there are: {', '.join(self.programs) or 'none'})") from None

    def map(self, name: str) -> Map:
        try:
            return self.maps[name]
        except KeyError:
            raise BPFError(f"no map {name!r} (there are: {', '.join(self.maps) or 'none'})") from None

    def attach(self, program: str, target: str | None = None, **options: Any) -> Link:
        """Attach one program (by name); the link is closed with the collection."""
        link = self.program(program).attach(target, **options)
        self.links.append(link)
        return link

    def attach_all(self) -> list[Link]:
        """Attach every program whose section says where (tracepoints, raw/BTF tracepoints,
        fentry/fexit/lsm, uprobes with a path), like libbpf's skeleton attach.  Programs
        needing arguments (XDP, sockets, perf events) are left for :meth:`attach`."""
        made: list[Link] = []
        try:
            for prog in self.programs.values():
                section = prog.section or ""
                if section.startswith(_AUTO_ATTACH) or (section.startswith(("uprobe/", "uretprobe/")) and ":" in section):
                    made.append(prog.attach(section))
        except BaseException:
            for link in made:
                link.close()
            raise
        self.links.extend(made)
        return made

    def detach_all(self) -> None:
        _close_all(self.links)
        self.links.clear()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        errors = _close_all(self.links) + _close_all(self.programs.values()) + _close_all(self.maps.values())
        self.links.clear()
        if errors:
            raise errors[0]

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Collection maps={list(self.maps)} programs={list(self.programs)} links={len(self.links)}"
                f"{' closed' if self.closed else ''}>")


def _close_all(objects: Iterable[Any]) -> list[BaseException]:
    errors: list[BaseException] = []
    for obj in list(objects):
        try:
            obj.close()
        except (BPFError, OSError) as exc:
            errors.append(exc)
    return errors


__all__ = ["Collection"]
