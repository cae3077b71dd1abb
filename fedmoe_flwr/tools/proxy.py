"""``fedmoe serve RUN --upstream URL``: this run's router in front of another OpenAI server.

The same API, auth and limits as ``fedmoe serve``, but generation happens on
an OpenAI-compatible server that serves the run's adapters by name: vLLM
(``--lora-modules name=path``, what ``fedmoe export --format vllm`` writes),
SGLang, LoRAX, or another ``fedmoe serve``.  Why: such engines batch and page
far better than one Python process, but know nothing of which expert should
answer; the proxy keeps the run's router and the experts' API here.

- ``model = "auto"`` is routed by the run's router; the forwarded request's
  ``model`` is the chosen expert's name.  Several experts chosen: the request
  goes to the best one (an upstream serves adapters, not weighted mixes), and
  the ``fedmoe`` response field says so.  A named expert or ``gateway`` passes
  through.
- No model is loaded unless the router needs one (``centroid`` embeds the
  prompt, ``loss`` runs every expert); ``ngrams`` and ``keywords`` need none.
  ``arrow`` mixes the experts per token inside the model, which no request to
  another server can do: it is refused at start.
- Streaming is relayed event by event as the upstream sends it.
- Upstream errors come back in OpenAI's format with the upstream's status;
  an upstream that cannot be reached is a 502, one that does not answer
  within ``--upstream-timeout`` (or does not accept the connection within
  :data:`CONNECT_TIMEOUT`) a 504.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from fedmoe_flwr.config import ConfigError, parse_run_config
from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.routing.centroids import load_centroids, load_ngram_counts
from fedmoe_flwr.routing.router import Route, Router, RouterSources
from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.tools.limits import check_router
from fedmoe_flwr.tools.serve import ApiError, ChatRequest

CONNECT_TIMEOUT = 5.0  # an upstream that is up accepts a connection at once
MAX_UPSTREAM_TIMEOUT = 3600.0
MAX_UPSTREAM_BYTES = 16 << 20  # a non-streamed answer; more is not a chat completion


def check_upstream(url: Any, key: str | None, timeout: Any) -> str:
    """The upstream's OpenAI base URL (``.../v1``), refused at start when unusable."""
    parts = urlsplit(url if isinstance(url, str) else "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--upstream must be an http(s) URL such as "
                          f"http://127.0.0.1:8000/v1, got {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("--upstream must be a plain base URL (no user:password@, ?query or "
                          "#fragment); pass the upstream's key with --upstream-key")
    if key is not None and (not key or any(c.isspace() or not c.isprintable() for c in key)):
        raise ConfigError("the upstream key (--upstream-key / FEDMOE_UPSTREAM_KEY) must be "
                          "printable text without spaces")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout <= MAX_UPSTREAM_TIMEOUT:
        raise ConfigError(f"--upstream-timeout must be in (0, {MAX_UPSTREAM_TIMEOUT:g}] "
                          f"seconds, got {timeout!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/') or '/v1'}"


class NeedsModel(Exception):
    """The router asked for the base model (an embedding or a loss)."""


@dataclass(frozen=True)
class _ModelFree(RouterSources):
    """The run's statistics only: a router that asks for the model raises :class:`NeedsModel`."""

    def need(self, name: str, method: str) -> Any:
        """The source, or :class:`NeedsModel` for what only a loaded model provides."""
        if name in ("embed", "prompt_losses"):
            raise NeedsModel(method)
        return super().need(name, method)


class ProxyRouter:
    """Routes requests as ``fedmoe serve`` does, with a model only when the router needs one."""

    def __init__(self, run: RunView) -> None:
        try:
            cfg = parse_run_config(run.run_config())
        except ConfigError as err:
            raise ConfigError(f"{run.root / 'run_config.json'}: {err}") from None
        self.run, self.cfg = run, replace(cfg, router=check_router(cfg.router))
        self.lock = threading.Lock()  # a model, when there is one, serves one call at a time
        self.assistant: Any = None
        self.experts: list[str] = []
        self.router: Any = None
        self._build()

    def _build(self) -> None:
        """(Re)build the router when the run's experts changed (a specialty joined)."""
        experts = [i.name for i in self.run.experts()]
        if experts == self.experts and self.router is not None:
            return
        self.experts = experts
        sources = _ModelFree(centroids=lambda: load_centroids(self.run.root),
                             ngram_counts=lambda: load_ngram_counts(self.run.root))
        try:
            self.router = Router(self.cfg.router, experts, sources) if len(experts) > 1 \
                else None
        except NeedsModel:
            from fedmoe_flwr.tools.inference import Assistant

            self.router = None
            self.assistant = Assistant(self.run, self.cfg)  # the base model, every expert
            return
        if getattr(getattr(self.router, "scorer", None), "token_level", False):
            raise ConfigError("the arrow router mixes the experts per token inside the model; "
                              "a proxy can only send each request to one adapter upstream: "
                              "serve this run without --upstream, or choose another "
                              "router.method (ngrams, keywords, centroid, loss)")

    def route(self, req: ChatRequest) -> Route:
        """The experts a request uses: routed for ``auto``, else the one it names."""
        if req.model == GATEWAY:
            return Route([], {}, {}, "explicit")
        if req.model != "auto":
            return Route([req.model], {req.model: 1.0}, {}, "explicit")
        with self.lock:
            if self.assistant is not None:
                self.assistant.refresh()
                return self.assistant.router.route(req.prompt)
            self._build()
            if self.router is None:  # one expert: nothing to choose
                name = self.experts[0]
                return Route([name], {name: 1.0}, {name: 0.0}, "sole")
            return self.router.route(req.prompt)


class Upstream:
    """The OpenAI-compatible server generation is forwarded to, and its failures as 502/504."""

    def __init__(self, base: str, key: str | None = None, timeout: float = 120.0) -> None:
        self.base, self.timeout = base, float(timeout)
        self.connect = min(CONNECT_TIMEOUT, self.timeout)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """One connection pool, made in the server's event loop on first use."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base + "/", headers=self._headers,
                timeout=httpx.Timeout(self.timeout, connect=self.connect))
        return self._client

    async def close(self) -> None:
        """Close the pool (the server is stopping)."""
        if self._client is not None:
            await self._client.aclose()

    def failure(self, err: Exception) -> ApiError:
        """A transport failure as the client sees it: 504 when slow, 502 when unreachable."""
        if isinstance(err, httpx.ConnectTimeout | httpx.PoolTimeout):
            return ApiError(504, f"the upstream {self.base} did not accept a connection within "
                                 f"{self.connect:g} s", "server_error")
        if isinstance(err, httpx.TimeoutException | TimeoutError):
            return ApiError(504, f"the upstream {self.base} did not answer within "
                                 f"{self.timeout:g} s (--upstream-timeout)", "server_error")
        if isinstance(err, httpx.ConnectError):
            reason = str(err) or "connection refused"
            return ApiError(502, f"the upstream {self.base} is unreachable ({reason}); is it "
                                 f"running?", "server_error")
        return ApiError(502, f"the upstream {self.base} failed: {type(err).__name__}: {err}",
                        "server_error")

    def refused(self, status: int, content: bytes, model: str) -> ApiError:
        """An upstream error answer in OpenAI's format, with the upstream's status."""
        message, kind, param = None, "upstream_error", None
        try:
            data = json.loads(content)
            err = data.get("error", data) if isinstance(data, dict) else {}
            err = {"message": err} if isinstance(err, str) else err
            message, kind = err.get("message"), err.get("type") or kind
            param = err.get("param") if isinstance(err.get("param"), str) else None
        except (ValueError, AttributeError):
            pass
        text = str(message or content.decode("utf-8", "replace").strip()[:500] or "no detail")
        status = status if 400 <= status <= 599 else 502
        return ApiError(status, f"the upstream {self.base} answered {status} for model "
                                f"{model!r}: {text}", str(kind), param)

    async def get(self, path: str) -> Any:
        """GET a JSON document (``models``)."""
        try:
            resp = await self.client().get(path)
        except httpx.HTTPError as err:
            raise self.failure(err) from None
        if resp.status_code != 200:
            raise self.refused(resp.status_code, resp.content, "-")
        return _json_of(resp.content, self.base)

    async def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed chat completion, within ``timeout`` from start to end.

        httpx bounds each read; an upstream that trickles bytes is bounded here.
        """
        try:
            async with asyncio.timeout(self.timeout):
                resp = await self.client().post("chat/completions", json=body)
        except (httpx.HTTPError, TimeoutError) as err:
            raise self.failure(err) from None
        if resp.status_code != 200:
            raise self.refused(resp.status_code, resp.content, body["model"])
        return _json_of(resp.content, self.base)

    async def open_stream(self, body: dict[str, Any]) -> httpx.Response:
        """Start a streamed completion; errors before its first byte are raised here."""
        client = self.client()
        try:
            resp = await client.send(client.build_request("POST", "chat/completions",
                                                          json=body), stream=True)
        except httpx.HTTPError as err:
            raise self.failure(err) from None
        if resp.status_code != 200:
            content = await resp.aread()
            await resp.aclose()
            raise self.refused(resp.status_code, content, body["model"])
        return resp


def _json_of(content: bytes, base: str) -> Any:
    if len(content) > MAX_UPSTREAM_BYTES:
        raise ApiError(502, f"the upstream {base} answered over {MAX_UPSTREAM_BYTES} bytes",
                       "server_error")
    try:
        return json.loads(content)
    except ValueError:
        raise ApiError(502, f"the upstream {base} answered something that is not JSON: "
                            f"{content[:200]!r}", "server_error") from None


def forward_body(body: dict[str, Any], req: ChatRequest, target: str) -> dict[str, Any]:
    """The request as the upstream gets it: the chosen adapter, and this server's defaults.

    ``max_tokens`` and ``temperature`` are sent explicitly so that the answer is
    what ``fedmoe serve`` would give (128 tokens, greedy) whatever the
    upstream's own defaults are.
    """
    out = {k: v for k, v in body.items() if k not in ("max_completion_tokens",)}
    out.update(model=target, messages=req.messages, max_tokens=req.max_tokens,
               temperature=req.temperature)
    return out


def plan(run: RunView, route: Route, req: ChatRequest, base: str) -> tuple[str, dict]:
    """The adapter a request is forwarded to, and the ``fedmoe`` field that says why."""
    target = route.best or GATEWAY
    names = run.names()
    info: dict[str, Any] = {
        "experts": route.experts, "weights": route.weights, "adapter": target,
        "router": route.method, "forwarded_to": target, "upstream": base,
        "versions": {n: run.adapter(n).version for n in {*route.experts, target}
                     if n in names},
        "messages_used": len(req.messages), "routed_on": "the last user message"}
    if len(route.experts) > 1:
        info["note"] = (f"the router chose {' + '.join(route.experts)}; a proxy sends each "
                        f"request to one adapter upstream, so it went to the best, {target} "
                        f"(weight {route.weights[target]:.2f}); serve without --upstream to "
                        f"mix them")
    return target, info


def _with_info(obj: dict[str, Any], req: ChatRequest, info: dict[str, Any]) -> dict[str, Any]:
    """A completion (or chunk) as this server answers: its model name, the routing field."""
    upstream = obj.get("fedmoe")
    return {**obj, "model": req.model,
            "fedmoe": {**info, **({"upstream_fedmoe": upstream} if upstream else {})}}


async def complete(upstream: Upstream, body: dict[str, Any], req: ChatRequest,
                   info: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed completion through the upstream."""
    answer = await upstream.post(body)
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        raise ApiError(502, f"the upstream {upstream.base} answered JSON that is not a chat "
                            f"completion", "server_error")
    return _with_info(answer, req, info)


async def relay(resp: httpx.Response, req: ChatRequest, info: dict[str, Any],
                upstream: Upstream) -> AsyncIterator[str]:
    """The upstream's server-sent events as they arrive, each chunk under this model name.

    The routing field rides on the chunk that ends the answer, as ``fedmoe
    serve`` sends it.
    """
    tagged = False
    try:
        async for line in resp.aiter_lines():
            data = line[5:].strip() if line.startswith("data:") else None
            if not data:
                continue
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                yield f"data: {data}\n\n"
                continue
            if isinstance(chunk, dict) and "choices" in chunk:
                ends = any(isinstance(c, dict) and c.get("finish_reason")
                           for c in chunk.get("choices") or [])
                chunk = _with_info(chunk, req, info) if ends and not tagged else \
                    {**chunk, "model": req.model}
                tagged = tagged or ends
            yield f"data: {json.dumps(chunk)}\n\n"
    except httpx.HTTPError as err:  # after the first byte: reported in the stream
        yield f"data: {json.dumps(upstream.failure(err).body())}\n\n"
    finally:
        await resp.aclose()
    yield "data: [DONE]\n\n"


async def list_models(upstream: Upstream, run: RunView) -> dict[str, Any]:
    """``auto`` and the run's adapters the upstream serves, each with its version."""
    listing = await upstream.get("models")
    data = listing.get("data") if isinstance(listing, dict) else None
    served = {m["id"]: m for m in data or [] if isinstance(m, dict)
              and isinstance(m.get("id"), str)}
    names = run.names()
    present = [n for n in names if n in served]
    now = int(time.time())
    auto: dict[str, Any] = {"id": "auto", "object": "model", "created": now,
                            "owned_by": "fedmoe", "version": None, "upstream": upstream.base,
                            "routes_to": [n for n in present if n != GATEWAY]}
    if len(present) < len(names):
        auto["missing_upstream"] = [n for n in names if n not in served]
    return {"object": "list", "data": [auto, *[
        {"id": n, "object": "model", "created": now, "owned_by": "fedmoe",
         "version": run.adapter(n).version, "upstream": upstream.base} for n in present]]}
