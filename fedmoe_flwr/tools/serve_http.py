"""The HTTP side of ``fedmoe serve``: FastAPI routes over :mod:`fedmoe_flwr.tools.serve`.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations
at runtime to know which parameter is the request.
"""

import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from fedmoe_flwr.server.rundir import RunDirError, RunView
from fedmoe_flwr.tools.console import is_public_console_path, mount_console
from fedmoe_flwr.tools.serve import (
    MAX_BODY_BYTES,
    ApiError,
    ChatRequest,
    Reply,
    ServedRun,
    adapter_download,
    adapter_info,
    check_batching,
    check_key,
    check_server_settings,
    completion_body,
    model_names,
    parse_body,
    stream_completion,
)


def create_app(run: RunView, api_key: str | None = None, *, max_batch: int = 16,
               max_queue: int = 64, window_ms: float = 5.0) -> Any:
    """The FastAPI application serving one run (loads the model once, now)."""
    served = ServedRun(run, max_batch=max_batch, max_queue=max_queue, window_ms=window_ms)
    app = FastAPI(title="fedmoe serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = served
    guard(app, api_key)
    _openai_routes(app, run, served)
    expert_routes(app, run)
    mount_console(app, run.root, api_key)  # the live page beside the API: /console/
    return app


def guard(app: Any, api_key: str | None) -> None:
    """Errors in OpenAI's format; the key and the body size checked before any route."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        headers = {"Retry-After": "1"} if err.status == 503 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(RunDirError)
    async def run_error(_request: Request, err: RunDirError) -> JSONResponse:
        status = 404 if "no adapter" in str(err) else 500
        return JSONResponse(ApiError(status, str(err), "not_found_error" if status == 404
                                     else "server_error").body(), status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        try:
            if request.url.path != "/health" and not is_public_console_path(request.url.path):
                check_key(api_key, request.headers.get("authorization"))
            size = int(request.headers.get("content-length") or 0)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.status)
        except ValueError:
            return JSONResponse(ApiError(400, "bad Content-Length").body(), status_code=400)
        return await call_next(request)


def _openai_routes(app: Any, run: RunView, served: ServedRun) -> None:
    """``/health``, ``/v1/models`` and ``/v1/chat/completions``."""

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        versions = {n: run.adapter(n).version for n in run.names()}
        return {"object": "list", "data": [
            {"id": m, "object": "model", "created": int(time.time()), "owned_by": "fedmoe",
             "version": versions.get(m)} for m in served.models()]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        req = ChatRequest(await read_body(request), served.models())
        ids = await run_in_threadpool(served.check, req)  # tokenising: the loop stays free
        reply = Reply()
        job = served.submit(req, ids, reply)  # a 503 now if the queue is full
        if req.stream:
            return StreamingResponse(stream_completion(req, job, reply),
                                     media_type="text/event-stream")
        answer, versions, rows = await reply.answer()
        return completion_body(req, answer, versions, rows)


async def read_body(request: Request) -> Any:
    """The request's JSON body, bounded (413) and parsed with the depth limit (400)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
    return parse_body(raw)


def expert_routes(app: Any, run: RunView) -> None:
    """What the run checkpointed: ``/experts``, ``/gateway`` and their weights."""

    @app.get("/experts")
    def experts() -> dict[str, Any]:
        return {"experts": [adapter_info(run, i.name) for i in run.experts()]}

    @app.get("/experts/{name}")
    def expert(name: str) -> dict[str, Any]:
        return adapter_info(run, _expert_name(run, name))

    @app.get("/gateway")
    def gateway() -> dict[str, Any]:
        return adapter_info(run, "gateway")

    @app.get("/experts/{name}/weights")
    def expert_weights(name: str, format: str = "peft") -> Response:  # noqa: A002
        return _download(run, _expert_name(run, name), format)

    @app.get("/gateway/weights")
    def gateway_weights(format: str = "peft") -> Response:  # noqa: A002
        return _download(run, "gateway", format)


def _expert_name(run: RunView, name: str) -> str:
    if name not in [i.name for i in run.experts()]:
        raise ApiError(404, f"no expert {name!r}; experts: {[i.name for i in run.experts()]}",
                       "not_found_error")
    return name


def _download(run: RunView, name: str, fmt: str) -> Any:
    data, media, filename = adapter_download(run, name, fmt)
    return Response(data, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def serve(run: RunView, host: str, port: int, api_key: str | None, *, max_batch: int = 16,
          max_queue: int = 64, window_ms: float = 5.0) -> None:
    """Run the server until interrupted."""
    import uvicorn

    check_server_settings(port, api_key)  # before the model loads: fail in a second, not later
    check_batching(max_batch, max_queue, window_ms)
    app = create_app(run, api_key, max_batch=max_batch, max_queue=max_queue,
                     window_ms=window_ms)
    print(f"fedmoe serve: {run.root} on http://{host}:{port}/v1 "
          f"({'API key required' if api_key else 'no API key'}; batches of up to "
          f"{max_batch}, {max_queue} waiting at most; live console: "
          f"http://{host}:{port}/console/)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def create_proxy_app(run: RunView, upstream_url: str, api_key: str | None = None, *,
                     upstream_key: str | None = None, timeout: float = 120.0) -> Any:
    """The same API in front of an upstream server (:mod:`fedmoe_flwr.tools.proxy`)."""
    from fedmoe_flwr.tools.proxy import ProxyRouter, Upstream

    router = ProxyRouter(run)  # refuses arrow; loads a model only when the router needs one
    upstream = Upstream(upstream_url, upstream_key, timeout)

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        await upstream.close()

    app = FastAPI(title="fedmoe serve (proxy)", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    guard(app, api_key)
    _proxy_routes(app, run, router, upstream)
    expert_routes(app, run)
    mount_console(app, run.root, api_key)
    return app


def _proxy_routes(app: Any, run: RunView, router: Any, upstream: Any) -> None:
    """``/health``, ``/v1/models`` and ``/v1/chat/completions``, forwarded."""
    from fedmoe_flwr.tools import proxy

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return await proxy.list_models(upstream, run)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await read_body(request)
        req = ChatRequest(body, model_names(run))
        route = await run_in_threadpool(router.route, req)
        target, info = proxy.plan(run, route, req, upstream.base)
        forward = proxy.forward_body(body, req, target)
        if req.stream:
            resp = await upstream.open_stream(forward)  # errors before the first byte: here
            return StreamingResponse(proxy.relay(resp, req, info, upstream),
                                     media_type="text/event-stream")
        return await proxy.complete(upstream, forward, req, info)


def serve_proxy(run: RunView, host: str, port: int, api_key: str | None, upstream: str,
                upstream_key: str | None = None, timeout: float = 120.0) -> None:
    """Run the routing proxy until interrupted."""
    import uvicorn

    from fedmoe_flwr.tools.proxy import check_upstream

    check_server_settings(port, api_key)
    base = check_upstream(upstream, upstream_key, timeout)
    app = create_proxy_app(run, base, api_key, upstream_key=upstream_key, timeout=timeout)
    print(f"fedmoe serve: {run.root} on http://{host}:{port}/v1, generation forwarded to "
          f"{base} ({'API key required' if api_key else 'no API key'})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
