"""README front matter (model and dataset cards): metadata and the tags derived from it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*\r?$", re.S | re.M)


class CardError(ValueError):
    pass


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML block at the top of a README, as a dict ({} when there is none)."""
    m = _FRONT_MATTER.match(text)
    if m is None:
        return {}
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        raise CardError(f"Invalid YAML in README.md metadata: {e}") from None
    except RecursionError:
        data = _TOO_DEEP
    if data is None:
        return {}
    if data is _TOO_DEEP or _depth(data) > MAX_DEPTH:
        raise CardError(f"README.md metadata is nested deeper than {MAX_DEPTH} levels.")
    if not isinstance(data, dict):
        raise CardError("README.md metadata must be a YAML mapping.")
    result: dict[str, Any] = _jsonable(data)
    return result


MAX_DEPTH = 64
_TOO_DEEP = object()


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in `value`, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((v, level + 1) for v in item)
    return deepest


def strip_front_matter(text: str) -> str:
    """The README without its YAML block: the part a card page renders."""
    m = _FRONT_MATTER.match(text)
    if m is None:
        return text.removeprefix("\ufeff")
    return text[m.end():].lstrip("\r\n")


def _jsonable(value: Any) -> Any:
    """YAML can hold dates and other non-JSON scalars; store them as strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class CardCheck:
    """What the Hub's card validation says of a README: errors refuse it, warnings don't."""

    errors: list[str]
    warnings: list[str]


_DOCS = {"model": "model-cards#model-card-metadata", "dataset": "datasets-cards",
         "space": "spaces-config-reference"}


def check_card(text: str, repo_type: str = "model") -> CardCheck:
    """Validate a README as the Hub's `validate-yaml` does, for what hver knows of it: the
    YAML must parse to a mapping, `model-index` must be a list; a card without metadata
    gets the Hub's warning."""
    try:
        data = parse_front_matter(text)
    except CardError as e:
        return CardCheck([str(e)], [])
    errors = []
    if "model-index" in data and not isinstance(data["model-index"], list):
        errors.append('"model-index" must be an array')
    warnings = []
    if not data:
        docs = _DOCS.get(repo_type, _DOCS["model"])
        warnings.append("Empty or missing yaml metadata in repo card "
                        f"(https://huggingface.co/docs/hub/{docs})")
    return CardCheck(errors, warnings)


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


@dataclass
class CardIndex:
    """What listings and info read from a card."""

    card_data: dict[str, Any] | None
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None


def index_card(card: dict[str, Any] | None, repo_type: str, files: set[str]) -> CardIndex:
    card = card or {}
    tags: list[str] = []

    def add(tag: str) -> None:
        if tag and tag not in tags:
            tags.append(tag)

    library = card.get("library_name")
    if not isinstance(library, str):
        library = "transformers" if repo_type == "model" and "config.json" in files else None
    pipeline = card.get("pipeline_tag") if isinstance(card.get("pipeline_tag"), str) else None
    if repo_type == "model":
        if library:
            add(library)
        for fmt, ext in (("safetensors", ".safetensors"), ("gguf", ".gguf"), ("onnx", ".onnx")):
            if any(f.endswith(ext) for f in files):
                add(fmt)
        if pipeline:
            add(pipeline)
    if repo_type == "space" and isinstance(card.get("sdk"), str):
        add(card["sdk"])  # as the Hub tags Spaces: `gradio`, `docker`, ...
    for t in as_list(card.get("tags")):
        add(t)
    for lang in as_list(card.get("language")):
        add(lang if repo_type == "model" else f"language:{lang}")
    if repo_type == "dataset":
        for key in ("task_categories", "task_ids", "size_categories", "modality",
                    "multilinguality", "language_creators", "annotations_creators",
                    "source_datasets"):
            for v in as_list(card.get(key)):
                add(f"{key}:{v}")
    for d in as_list(card.get("datasets")):
        add(f"dataset:{d}")
    for b in as_list(card.get("base_model")):
        add(f"base_model:{b}")
    for lic in as_list(card.get("license")):
        add(f"license:{lic}")
    return CardIndex(
        card_data=card or None, tags=tags, pipeline_tag=pipeline, library_name=library
    )


def tag_matches(filter_value: str, index_tags: list[str], card: dict[str, Any] | None) -> bool:
    """Does a `filter=` value of a listing match this repo?"""
    if filter_value in index_tags:
        return True
    key, _, value = filter_value.partition(":")
    if not value or card is None:
        return False
    if key == "language":
        return value in as_list(card.get("language"))
    if key == "library":
        return value == card.get("library_name")
    return value in as_list(card.get(key))
