"""The dashboard's routes: the static page at ``/`` (``static/``: HTML, CSS, vanilla JS, no build step) and
the three JSON routes it polls, ``/api/v1/dashboard/{overview,blocks/{n},jobs}`` (``server/dashboard.py``
reads what they show)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from madara_orchestrator.domain.errors import InvalidInput, NotFound
from madara_orchestrator.domain.jobs import JobStatus, JobType
from madara_orchestrator.server import models
from madara_orchestrator.server.dashboard import MAX_JOB_ROWS, block_view, job_list, overview
from madara_orchestrator.server.http import Endpoint, Param, api
from madara_orchestrator.server.routes.admin import JOB_TYPES
from madara_orchestrator.server.routes.jobs import BLOCK

E = TypeVar("E", bound=enum.StrEnum)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
MAX_BLOCK_NUMBER = 2**63 - 1


def _ok(data: object) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, headers={"Cache-Control": "no-store"})


def _enum_values(raw: list[str], enum_cls: type[E], what: str) -> list[E]:
    values: list[E] = []
    for text in raw:
        for part in filter(None, (p.strip() for p in text.split(","))):
            try:
                values.append(enum_cls(part))
            except ValueError:
                raise InvalidInput(f"Invalid query: unknown {what} {part!r}") from None
    return values


def _block_number(raw: str) -> int:
    # ASCII digits only (``isdigit`` alone takes '²', which ``int`` refuses), and no larger than the
    # largest integer the database stores.
    if not _is_decimal(raw) or len(raw) > 19 or int(raw) > MAX_BLOCK_NUMBER:
        raise InvalidInput(f"Invalid block number: {raw} (a block number is an integer from 0 to {MAX_BLOCK_NUMBER})")
    return int(raw)


def _is_decimal(raw: str) -> bool:
    return raw.isascii() and raw.isdigit()


def _read(name: str) -> bytes:
    path = STATIC_DIR / name
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RuntimeError(f"dashboard file missing from the package: {path} ({exc}); reinstall the package") from exc


@dataclass(frozen=True)
class Files:
    """The page, its icon and its assets, read once when the app is made."""

    index: bytes
    icon: bytes
    assets: dict[str, tuple[bytes, str]]

    @classmethod
    def load(cls) -> Files:
        assets = {
            path.name: (path.read_bytes(), STATIC_TYPES[path.suffix])
            for path in sorted(STATIC_DIR.iterdir())
            if path.suffix in STATIC_TYPES
        }
        return cls(_read("index.html"), _read("favicon.ico"), assets)

    async def page(self, request: Request) -> Response:
        return Response(self.index, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def favicon(self, request: Request) -> Response:
        return Response(self.icon, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})

    async def asset(self, request: Request) -> Response:
        found = self.assets.get(request.path_params["name"])
        if found is None:
            raise NotFound(f"No dashboard file {request.path_params['name']!r}")
        body, media_type = found
        return Response(body, media_type=media_type, headers=PAGE_HEADERS)


async def overview_route(request: Request) -> Response:
    return _ok(await overview(api(request).runtime, admin_enabled=api(request).admin_enabled))


async def block_route(request: Request) -> Response:
    return _ok(await block_view(api(request).runtime, _block_number(request.path_params["n"])))


async def jobs_route(request: Request) -> Response:
    params = request.query_params
    statuses = _enum_values(params.getlist("status"), JobStatus, "job status")
    job_types = _enum_values(params.getlist("job_type"), JobType, "job type")
    raw_limit = params.get("limit", "50")
    if not _is_decimal(raw_limit) or not 1 <= int(raw_limit) <= MAX_JOB_ROWS:
        raise InvalidInput(f"Invalid query: limit must be an integer from 1 to {MAX_JOB_ROWS}")
    raw_attention = params.get("needs_attention", "false").lower()
    if raw_attention not in ("true", "false", "1", "0"):
        raise InvalidInput("Invalid query: needs_attention must be true or false")
    jobs = await job_list(
        api(request).runtime,
        statuses=statuses,
        job_types=job_types,
        limit=int(raw_limit),
        needs_attention=raw_attention in ("true", "1"),
    )
    return _ok({"jobs": jobs})


JOB_FILTERS = (
    Param(
        "status",
        "query",
        list[JobStatus],
        description="Only these statuses (repeat the key, or comma-separate)",
        repeated=True,
    ),
    JOB_TYPES,
    Param(
        "needs_attention",
        "query",
        Literal["true", "false", "1", "0"],
        description="Only the jobs stuck until an operator acts (Failed, VerificationTimeout, "
        "VerificationFailed) and those waiting out an outage; `status` is then ignored",
        default="false",
    ),
    Param("limit", "query", Annotated[int, Field(ge=1, le=MAX_JOB_ROWS)], default=50),
)


def endpoints() -> list[Endpoint]:
    files = Files.load()
    string = {"schema": {"type": "string"}}
    return [
        Endpoint(
            "/",
            files.page,
            "dashboardPage",
            "The dashboard page",
            "dashboard",
            answers={"200": {"description": "HTML", "content": {"text/html": string}}},
        ),
        Endpoint(
            "/favicon.ico",
            files.favicon,
            "dashboardIcon",
            "The dashboard's icon",
            "dashboard",
            answers={"200": {"description": "ICO", "content": {"image/x-icon": string}}},
        ),
        Endpoint(
            "/static/{name}",
            files.asset,
            "dashboardAsset",
            "A dashboard script or style sheet",
            "dashboard",
            params=(Param("name", "path", str, required=True),),
            answers={
                "200": {"description": "The file", "content": {"text/javascript": string, "text/css": string}},
                "404": {"$ref": "#/components/responses/E404"},
            },
        ),
        Endpoint(
            "/api/v1/dashboard/overview",
            overview_route,
            "dashboardOverview",
            "What the dashboard shows: stage progress, lag, batches, job counts, settlements",
            "dashboard",
            data=models.DashboardOverview,
            message=False,
            errors=(503,),
        ),
        Endpoint(
            "/api/v1/dashboard/blocks/{n}",
            block_route,
            "dashboardBlock",
            "One block: its batches, jobs and settlement transactions",
            "dashboard",
            data=models.DashboardBlock,
            message=False,
            errors=(400, 404, 503),
            params=(BLOCK,),
        ),
        Endpoint(
            "/api/v1/dashboard/jobs",
            jobs_route,
            "dashboardJobs",
            "The latest jobs, newest first",
            "dashboard",
            data=models.DashboardJobList,
            message=False,
            errors=(400, 503),
            params=JOB_FILTERS,
        ),
    ]
