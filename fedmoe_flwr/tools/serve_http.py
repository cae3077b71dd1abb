"""The HTTP side of ``fedmoe serve``: FastAPI routes over :mod:`fedmoe_flwr.tools.serve`.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations
at runtime to know which parameter is the request.
"""

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from fedmoe_flwr.server.rundir import RunDirError, RunView
from fedmoe_flwr.tools.serve import (
    MAX_BODY_BYTES,
    ApiError,
    ChatRequest,
    ServedRun,
    adapter_download,
    adapter_info,
    check_key,
    check_server_settings,
    completion_body,
    parse_body,
    stream_completion,
)


def create_app(run: RunView, api_key: str | None = None) -> Any:
    """The FastAPI application serving one run (loads the model once, now)."""
    served = ServedRun(run)
    app = FastAPI(title="fedmoe serve", docs_url=None, redoc_url=None, openapi_url=None)
    _guard(app, api_key)
    _openai_routes(app, run, served)
    _expert_routes(app, run)
    return app


def _guard(app: Any, api_key: str | None) -> None:
    """Errors in OpenAI's format; the key and the body size checked before any route."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(RunDirError)
    async def run_error(_request: Request, err: RunDirError) -> JSONResponse:
        status = 404 if "no adapter" in str(err) else 500
        return JSONResponse(ApiError(status, str(err), "not_found_error" if status == 404
                                     else "server_error").body(), status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        try:
            if request.url.path != "/health":
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
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        req = ChatRequest(parse_body(raw), served.models())
        served.check(req)
        if req.stream:
            return StreamingResponse(stream_completion(served, req),
                                     media_type="text/event-stream")
        return await run_in_threadpool(_complete, served, req)  # the event loop stays free


def _expert_routes(app: Any, run: RunView) -> None:
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


def _complete(served: ServedRun, req: ChatRequest) -> dict[str, Any]:
    with served.lock:  # one model, one generation at a time; requests queue here
        answer = served.complete(req)
        versions = dict(served.assistant.versions)
    return completion_body(req, answer, versions)


def _expert_name(run: RunView, name: str) -> str:
    if name not in [i.name for i in run.experts()]:
        raise ApiError(404, f"no expert {name!r}; experts: {[i.name for i in run.experts()]}",
                       "not_found_error")
    return name


def _download(run: RunView, name: str, fmt: str) -> Any:
    data, media, filename = adapter_download(run, name, fmt)
    return Response(data, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def serve(run: RunView, host: str, port: int, api_key: str | None) -> None:
    """Run the server until interrupted."""
    import uvicorn

    check_server_settings(port, api_key)  # before the model loads: fail in a second, not later
    app = create_app(run, api_key)
    print(f"fedmoe serve: {run.root} on http://{host}:{port}/v1 "
          f"({'API key required' if api_key else 'no API key'})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
