"""Repo ids without a namespace (`gpt2`): RepoNotFound, as the Hub answers an unknown one.

Every repo here has a namespace, so such an id names nothing; but clients ask for them
(`HfApi.repo_exists("name")`, `Dataset.push_to_hub("name")`, which creates the repo in
the caller's namespace on RepoNotFound) and must get the error they can read, where the
router alone would answer a bare 404 or 405. Included after every other route, pages too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException

from hver.errors import RepoNotFound
from hver.names import RESERVED_NAMESPACES, RepoType

router = APIRouter(include_in_schema=False)
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
# What follows a repo id in the API's repo routes.
REPO_ROUTES = ("revision", "tree", "paths-info", "refs", "commits", "commit", "preupload",
               "branch", "tag", "super-squash", "settings", "like", "likers", "discussions",
               "ask-access", "user-access-request", "auth-check", "xet-read-token",
               "xet-write-token", "treesize", "lfs-files")


class _Word(Convertor[str]):
    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _RepoPlural(_Word):
    regex = "|".join(t.plural for t in RepoType)


class _RepoRoute(_Word):
    regex = "|".join(REPO_ROUTES)


register_url_convertor("hver_repo_plural", _RepoPlural())
register_url_convertor("hver_repo_route", _RepoRoute())


async def missing_repo() -> Any:
    raise RepoNotFound()


async def missing_model_file(name: str) -> Any:
    if name.lower() in RESERVED_NAMESPACES:
        raise HTTPException(404, "Not Found")  # `/api/resolve/...` and the like: no repo
    raise RepoNotFound()


_api = "/api/{plural:hver_repo_plural}/{name}"
router.add_api_route(_api, missing_repo, methods=["GET", "HEAD"])
router.add_api_route(f"{_api}/{{route:hver_repo_route}}", missing_repo, methods=ALL_METHODS)
router.add_api_route(f"{_api}/{{route:hver_repo_route}}/{{rest:path}}", missing_repo,
                     methods=ALL_METHODS)
# Files: `/name/resolve/...` for models. Datasets and spaces need nothing: the model route
# already takes `/datasets/name/resolve/...` for the model `datasets/name`, which is missing.
router.add_api_route("/{name}/resolve/{revision}/{path:path}", missing_model_file,
                     methods=["GET", "HEAD"])
