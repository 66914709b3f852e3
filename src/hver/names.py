"""Repo types, repo ids, revisions and in-repo paths: parsing and validation."""

from __future__ import annotations

import enum
import re

from dulwich.refs import Ref, check_ref_format

from hver.errors import InvalidName, InvalidPath

# ASCII only, as on the Hub (a Unicode \w would admit "très"); \Z, since `$` would
# also match before a trailing newline.
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}\Z", re.ASCII)
# URL path segments that can never be a namespace: they route elsewhere.
RESERVED_NAMESPACES = frozenset(
    {"api", "models", "datasets", "spaces", "kernels", "docs", "settings", "login", "logout",
     "join", "new", "new-dataset", "new-space", "static", "organizations", "search",
     "collections", "blog", "pricing", "_lfs"}
)
MAX_PATH_BYTES = 4096
# Folders deep enough for any real repo; 1,000 nested trees would only make every tree
# walk (and dulwich's recursive tree building) pay for someone's attack.
MAX_PATH_SEGMENTS = 100
# What checkouts on other filesystems would turn into `.git`: NTFS drops trailing dots
# and spaces and knows the short name `git~1`; HFS+ ignores these code points.
_HFS_IGNORED = dict.fromkeys(map(ord, "\u200c\u200d\u200e\u200f\u202a\u202b\u202c"
                                      "\u202d\u202e\u206a\u206b\u206c\u206d\u206e"
                                      "\u206f\ufeff"))


class RepoType(enum.StrEnum):
    model = "model"
    dataset = "dataset"
    space = "space"

    @property
    def plural(self) -> str:
        """The segment used in `/api/{plural}/...`."""
        return f"{self.value}s"

    @property
    def url_prefix(self) -> str:
        """The prefix of web and resolve URLs: empty for models."""
        return "" if self is RepoType.model else f"{self.value}s/"

    @classmethod
    def from_plural(cls, plural: str) -> RepoType:
        for t in cls:
            if t.plural == plural:
                return t
        raise InvalidName(f"Unknown repo type: {plural!r}")

    @classmethod
    def parse(cls, value: str | None) -> RepoType:
        if value is None or value == "":
            return cls.model
        try:
            return cls(value)
        except ValueError:
            try:
                return cls.from_plural(value)
            except InvalidName:
                raise InvalidName(f"Invalid repo type: {value!r}") from None


def validate_part(part: str, what: str = "name") -> str:
    """One half of a repo id, or an account name."""
    if (
        not _NAME_RE.match(part)
        or "--" in part
        or ".." in part
        or part.lower().endswith(".git")
        or part.endswith(".")
    ):
        raise InvalidName(
            f"Invalid {what} {part!r}: use letters, digits, '-', '_' and '.', "
            "start with a letter or digit, at most 96 characters, no '--' or '..', "
            "and no '.git' suffix."
        )
    return part


def validate_namespace(name: str) -> str:
    validate_part(name, "namespace")
    if name.lower() in RESERVED_NAMESPACES:
        raise InvalidName(f"{name!r} is a reserved name.")
    return name


def split_repo_id(repo_id: str) -> tuple[str, str]:
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise InvalidName(f"Invalid repo id {repo_id!r}: expected 'namespace/name'.")
    return validate_namespace(parts[0]), validate_part(parts[1])


def validate_path(path: str) -> str:
    """A file path inside a repo: relative, normalised, nothing that escapes or hides in .git.

    A backslash is an ordinary character of a file name, as on the Hub (`folder/a\\b` is
    the file `a\\b`), but a Windows checkout would take it for a separator: what lies
    between backslashes is held to the rules of a segment too, so `..\\x`, `a\\.git\\x` and
    `\\x` never reach a client's disk.
    """
    if not path:
        raise InvalidPath("Empty file path.")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath("File path is too long.")
    if "\x00" in path:
        raise InvalidPath(f"Invalid file path {path!r}: NUL is not allowed.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise InvalidPath(f"Invalid file path {path!r}: control characters are not allowed.")
    if path.startswith("/"):
        raise InvalidPath(f"Invalid file path {path!r}: paths must be relative.")
    parts = path.split("/")
    if len(parts) > MAX_PATH_SEGMENTS:
        raise InvalidPath(
            f"File path is too deep: at most {MAX_PATH_SEGMENTS} segments are allowed.")
    for seg in parts:
        for piece in seg.split("\\"):
            if piece in ("", ".", ".."):
                raise InvalidPath(
                    f"Invalid file path {path!r}: empty, '.' and '..' segments are not "
                    "allowed (a backslash separates segments on Windows)."
                )
            if _is_dot_git(piece):
                raise InvalidPath(f"Invalid file path {path!r}: '.git' is reserved.")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath(f"Invalid file path {path!r}: not valid UTF-8.") from None
    return path


def _is_dot_git(segment: str) -> bool:
    """Whether a checkout would take this segment for `.git`: in any case (`.GIT` on a
    case-insensitive filesystem), or spelled as NTFS or HFS+ would read it as `.git`,
    as git's own `verify_path` refuses them."""
    name = segment.translate(_HFS_IGNORED).rstrip(". ").lower()
    return name in (".git", "git~1")


def validate_folder(path: str) -> str:
    """A folder path; a trailing '/' is allowed and removed."""
    return validate_path(path.rstrip("/"))


_REF_BAD = re.compile(r"(\.\.|[\x00-\x20~^:?*\[\\\x7f]|@\{|//|\.lock$|^/|/$|\.$|^-)")


def validate_branch(name: str) -> str:
    """A branch or tag name, as git check-ref-format would accept it."""
    if not name or len(name) > 255 or _REF_BAD.search(name) or name.startswith("refs/"):
        raise InvalidName(f"Invalid reference name {name!r}.")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"Invalid reference name {name!r}.") from None
    if not check_ref_format(Ref(b"refs/heads/" + encoded)):  # components like ".x" or "x.lock"
        raise InvalidName(f"Invalid reference name {name!r}.")
    if re.fullmatch(r"[0-9a-f]{40}", name):
        raise InvalidName(f"Invalid reference name {name!r}: it looks like a commit id.")
    return name
