"""The dataset viewer pages: the first rows of each split of a dataset repo.

`/datasets/{ns}/{name}/viewer` shows the default config's first split and
`/datasets/{ns}/{name}/viewer/{config}/{split}` any other, as on the Hub; both read the
default branch. Reading rows is file access, so a gated repo needs it as a blob page does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hver.api.deps import base_url, param
from hver.api.gating import require_file_access
from hver.core import preview as core_preview
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.repos import DEFAULT_BRANCH
from hver.errors import GatedRepo, NotFound
from hver.names import RepoType
from hver.storage.git import GitRepo
from hver.web import pages

CARD_ROWS = 10


@dataclass
class CardPreview:
    """The few rows a dataset card page shows, and where the full viewer is."""

    preview: core_preview.Preview
    viewer_url: str


def _split_url(view: Any, config: str, split: str) -> str:
    return f"{view.url}/viewer/{pages.rev_segment(config)}/{pages.rev_segment(split)}"


def card_preview(hub: Hub, actor: Actor | None, view: Any, git: GitRepo,
                 site: str) -> CardPreview | None:
    """The first rows of a dataset's default split, for its card page; None when there is
    nothing to show (no data files, a README `configs` error, a gate the actor has not
    passed). The viewer page explains those."""
    try:
        require_file_access(hub, actor, view.repo, site)
        layout = core_preview.dataset_layout(git, view.repo.id, view.commit)
    except (GatedRepo, core_preview.PreviewError):
        return None
    config = core_preview.default_config([c for c in layout.configs if c.splits])
    if config is None:
        return None
    split = config.splits[0]
    preview = core_preview.preview_split(hub, git, view.repo.id, view.commit, config, split,
                                         CARD_ROWS)
    preview.note = layout.note
    return CardPreview(preview, _split_url(view, config.name, split.name))


async def viewer_page(request: Request, ns: str, name: str, config: str | None = None,
                      split: str | None = None) -> HTMLResponse:
    hub, actor = await pages._page(request)
    site = base_url(request)

    def run() -> dict[str, Any]:
        view, git = pages._open(hub, actor, RepoType.dataset, ns, name, DEFAULT_BRANCH)
        require_file_access(hub, actor, view.repo, site)
        context: dict[str, Any] = {"view": view, "configs": [], "config": None,
                                   "preview": None, "problem": None}
        try:
            layout = core_preview.dataset_layout(git, view.repo.id, view.commit)
        except core_preview.PreviewError as e:
            context["problem"] = str(e)
            return context
        configs = layout.configs
        if config is None or split is None:
            chosen = core_preview.default_config([c for c in configs if c.splits])
            if chosen is None:
                context["problem"] = ("This dataset has no data files to preview yet."
                                      if not layout.files_cut else layout.note)
                return context
            found = (chosen, chosen.splits[0])
        else:
            match = core_preview.find(configs, param(config), param(split))
            if match is None:
                raise NotFound(f"This dataset has no split {param(split)!r} in a config "
                               f"named {param(config)!r}.")
            found = match
        context["configs"] = [
            (c.name, _split_url(view, c.name, c.splits[0].name) if c.splits else None)
            for c in configs]
        context["config"] = found[0]
        context["splits"] = [(s.name, _split_url(view, found[0].name, s.name))
                             for s in found[0].splits]
        context["preview"] = core_preview.preview_split(
            hub, git, view.repo.id, view.commit, found[0], found[1])
        context["preview"].note = layout.note
        return context

    context = await run_in_threadpool(run)
    return pages.render("viewer.html", tab="viewer", **context, **pages._common(request))
