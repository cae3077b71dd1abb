"""The console's HTTP side: one page, its three assets, and the JSON it polls.

::

    GET /console/                       the page (no run data in it: served without a key)
    GET /console/static/<asset>         console.js, console.css, console.svg (same)
    GET /console/api/state?since=CUR    the run: tables in full, chart points after CUR
                                        (Authorization: Bearer KEY when a key is set)

The page polls ``api/state`` every two seconds with ``fetch``, which can send
the ``Authorization`` header; an ``EventSource`` (server-sent events) cannot,
so with a key it would need the key in every URL, where logs and proxies keep
it.  A poll returns only what is new (the file is read from where the last
poll stopped), so polling costs about what a stream would.

No ``from __future__ import annotations`` here: FastAPI reads the handlers'
annotations at runtime.
"""

import hmac
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from fedmoe_flwr.tools.console.source import RunSource

PREFIX = "/console"
ASSETS = {"console.html": "text/html; charset=utf-8",
          "console.js": "text/javascript; charset=utf-8",
          "console.css": "text/css; charset=utf-8",
          "console.svg": "image/svg+xml"}
NO_STORE = {"Cache-Control": "no-store"}  # run data is always fresh, and never kept on disk
REVALIDATE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# The page runs only its own script, talks only to this server, and cannot be framed.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None.

    A diverged adapter logs NaN losses (Python's JSON writes them), but JSON
    itself has no NaN: a browser's parser rejects the whole answer.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


class FiniteJSON(JSONResponse):
    """A JSON answer that is valid JSON even when the run logged NaN (see :func:`finite`)."""

    def render(self, content: Any) -> bytes:
        """Standard JSON, non-finite numbers as ``null``."""
        return json.dumps(finite(content), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")


def asset(name: str) -> bytes:
    """One static file of the console, from the installed package (works offline, in a wheel)."""
    return resources.files("fedmoe_flwr.tools").joinpath("static", name).read_bytes()


def is_public_console_path(path: str) -> bool:
    """Whether a path is the console's page or assets, which carry no run data.

    An app with a key check of its own on every path (``fedmoe serve``) lets
    these through, or a browser could never load the page: a page load sends
    no ``Authorization`` header.  ``/console/api/*`` is never public.
    """
    return path in (PREFIX, PREFIX + "/") or (
        path.startswith(PREFIX + "/static/") and path.removeprefix(PREFIX + "/static/")
        in ASSETS)


def key_ok(api_key: str | None, header: str | None) -> bool:
    """``Authorization: Bearer KEY`` matches (constant-time); always true without a key."""
    if not api_key:
        return True
    given = header[len("Bearer "):] if (header or "").startswith("Bearer ") else ""
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"),
                                               api_key.encode("utf-8"))


def console_router(run_root: Path, api_key: str | None) -> APIRouter:
    """The console's routes under ``/console`` for the run directory ``run_root``."""
    source = RunSource(Path(run_root))
    router = APIRouter()

    @router.get(PREFIX, include_in_schema=False)
    def bare(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""  # keeps ?key=
        return RedirectResponse(f"{PREFIX}/{query}", status_code=307)

    @router.get(PREFIX + "/", include_in_schema=False)
    def page() -> Response:
        return Response(asset("console.html"), media_type=ASSETS["console.html"],
                        headers={**REVALIDATE, "Content-Security-Policy": PAGE_POLICY,
                                 "Referrer-Policy": "no-referrer"})

    @router.get(PREFIX + "/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in ASSETS or name == "console.html":
            return JSONResponse({"error": f"no asset {name!r}"}, status_code=404)
        return Response(asset(name), media_type=ASSETS[name], headers=REVALIDATE)

    @router.get(PREFIX + "/api/state", include_in_schema=False)
    async def state(request: Request, since: str | None = None) -> Response:
        if not key_ok(api_key, request.headers.get("authorization")):
            return JSONResponse({"error": "missing or wrong API key "
                                 "(Authorization: Bearer KEY)"}, status_code=401,
                                headers={**NO_STORE, "WWW-Authenticate": "Bearer"})
        body = await run_in_threadpool(source.view, since)  # file reads off the event loop
        return FiniteJSON(body, headers=NO_STORE)

    return router


def mount_console(app: FastAPI, run_root: Path, api_key: str | None) -> None:
    """Add the console under ``/console`` to an existing app (``fedmoe serve``'s).

    The host app's own key check must let :func:`is_public_console_path` paths
    through; the data endpoint checks the key itself either way.
    """
    app.include_router(console_router(run_root, api_key))


def create_console_app(run_root: Path, api_key: str | None) -> FastAPI:
    """A FastAPI app that is only the console (``fedmoe console``); ``/`` leads to it."""
    app = FastAPI(title="fedmoe console", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> Any:
        query = f"?{request.url.query}" if request.url.query else ""  # keeps ?key=
        return RedirectResponse(f"{PREFIX}/{query}", status_code=307)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    mount_console(app, run_root, api_key)
    return app
