"""Which upstream repos the mirror brings in, and under which local ids (no I/O)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from hver.names import RepoType


def _globs(value: str) -> tuple[str, ...]:
    return tuple(g.strip().lower() for g in value.split(",") if g.strip())


@dataclass(frozen=True)
class Rules:
    prefix: str = ""
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @classmethod
    def parse(cls, prefix: str, allow: str, deny: str) -> Rules:
        return cls(prefix, _globs(allow), _globs(deny))

    def upstream_namespace(self, namespace: str) -> str | None:
        """The upstream namespace a local one stands for; None: a local namespace."""
        if not namespace.lower().startswith(self.prefix.lower()):
            return None
        upstream = namespace[len(self.prefix):]
        return upstream or None

    def local_namespace(self, upstream_namespace: str) -> str:
        return self.prefix + upstream_namespace

    def allows(self, repo_type: RepoType, repo_id: str) -> bool:
        """An upstream repo id (`org/name`) passes the rules: globs match the id for
        models, `datasets/org/name` and `spaces/org/name` for the others (as in URLs),
        whatever the case. Deny wins; an empty allow list allows all."""
        name = f"{repo_type.url_prefix}{repo_id}".lower()
        if any(fnmatch.fnmatchcase(name, g) for g in self.deny):
            return False
        return not self.allow or any(fnmatch.fnmatchcase(name, g) for g in self.allow)
