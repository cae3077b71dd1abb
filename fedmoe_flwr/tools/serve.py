"""``fedmoe serve``: a run's experts behind an OpenAI-compatible API, plus the expert API.

- ``GET /v1/models``: ``auto`` (routed by the run's router), every expert, ``gateway``.
- ``POST /v1/chat/completions``: ``model`` = ``auto`` routes the last user message like
  ``fedmoe ask``; an expert's name or ``gateway`` uses that adapter.  ``max_tokens``,
  ``temperature``, ``seed``, ``stream`` (server-sent events in OpenAI's chunk format) and
  ``usage``; the extra field ``fedmoe`` names the experts, weights and versions used.
  Any other parameter is a 400 in OpenAI's error format, never silently ignored.
- ``GET /experts``, ``/experts/{name}``, ``/gateway``: what the run checkpointed;
  ``.../weights?format=peft`` (a zip of the PEFT adapter directory) or ``format=npz``
  (as ``fedmoe export`` writes it).  Training updates never come in over HTTP.

Served live from the run's last complete checkpoints: before each batch the server loads
expert versions newer than those in memory (atomic symlink swaps, checksums verified).
One model in memory serves every request: requests that arrive together are generated
together, each row with its own adapter (:mod:`fedmoe_flwr.tools.batching`; at most
``--max-batch`` rows, ``--max-queue`` waiting, one more is a 503).  With ``--upstream``
generation is forwarded instead (:mod:`fedmoe_flwr.tools.proxy`).  Safe by default:
binds 127.0.0.1; with ``--api-key`` (or ``FEDMOE_API_KEY``) every route but ``/health``
needs ``Authorization: Bearer KEY``; adapter names are looked up in the run, never joined
into paths; request bodies and ``max_tokens`` are bounded.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import tempfile
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.routing.router import Route
from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.tools.limits import MAX_NEW_TOKENS, SettingError, check_generation, check_text

MAX_BODY_BYTES = 1 << 20  # a chat request is text: 1 MiB is generous
MAX_TOKENS = MAX_NEW_TOKENS
MAX_MESSAGES = 256
MAX_JSON_DEPTH = 32  # a chat request nests 4 deep; a deeper body is refused, never parsed
SUPPORTED = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "seed",
             "stream", "n", "user"}


class ApiError(Exception):
    """An error answered in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.param = status, kind, param

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": {"message": str(self), "type": self.kind, "param": self.param,
                          "code": None}}


class ChatRequest:
    """A validated chat completion request."""

    def __init__(self, body: Any, models: list[str]) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        unsupported = sorted(set(body) - SUPPORTED)
        if unsupported:
            raise ApiError(400, f"unsupported parameter(s) {unsupported}; this server takes "
                                f"{sorted(SUPPORTED)}", param=unsupported[0])
        self.model = body.get("model")
        if self.model not in models:
            raise ApiError(404, f"model {self.model!r} does not exist; models: {models}",
                           param="model", kind="not_found_error")
        self.messages = _conversation(body.get("messages"))
        self.prompt = self.messages[-1]["content"]  # the question the router scores
        tokens = body.get("max_completion_tokens", body.get("max_tokens", 128))
        try:
            self.max_tokens, self.temperature, self.seed = check_generation(
                128 if tokens is None else tokens,
                0.0 if body.get("temperature") is None else body["temperature"],
                0 if body.get("seed") is None else body["seed"])
        except SettingError as err:  # the same rules as `fedmoe ask`, in OpenAI's names
            param = {"max_new_tokens": "max_tokens"}.get(err.setting, err.setting)
            raise ApiError(400, str(err).replace("max_new_tokens", param), param=param) \
                from None
        self.stream = body.get("stream", False)
        if not isinstance(self.stream, bool):
            raise ApiError(400, "stream must be true or false", param="stream")
        if body.get("n", 1) != 1:
            raise ApiError(400, "only n = 1 is supported", param="n")


def _conversation(messages: Any) -> list[dict[str, str]]:
    """Every message checked: a role, real text; the last one a non-empty user question.

    The whole conversation is used (the model reads it through its chat
    template); the router scores the last user message.
    """
    if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
        raise ApiError(400, f"messages must be a list of 1 to {MAX_MESSAGES} messages",
                       param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or set(m) - {"role", "content", "name"}:
            raise ApiError(400, f"messages[{i}] needs a role (system, user, assistant) and a "
                                f"content, and nothing else", param=f"messages[{i}]")
        try:
            content = check_text(m.get("content"), f"messages[{i}].content") \
                if i == len(messages) - 1 else _text_or_empty(m.get("content"), i)
        except SettingError as err:
            raise ApiError(400, str(err), param=err.setting) from None
        out.append({"role": m["role"], "content": content})
    if out[-1]["role"] != "user":
        raise ApiError(400, "the last message must be the user's question",
                       param=f"messages[{len(out) - 1}]")
    return out


def _text_or_empty(value: Any, i: int) -> str:
    if value == "":
        return value
    return check_text(value, f"messages[{i}].content")


def model_names(run: RunView) -> list[str]:
    """What a request may name: ``auto``, the experts, and the gateway when the run has one."""
    names = run.names()
    return ["auto", *[n for n in names if n != GATEWAY], *([GATEWAY] if GATEWAY in names
                                                            else [])]


class ServedRun:
    """The run's model with every expert, and the generation thread every request goes through.

    Requests queue (at most ``max_queue``); the thread generates up to
    ``max_batch`` of them together (:mod:`fedmoe_flwr.tools.batching`), after
    loading expert versions newer than those in memory.
    """

    def __init__(self, run: RunView, *, max_batch: int = 16, max_queue: int = 64,
                 window_ms: float = 5.0) -> None:
        from fedmoe_flwr.tools.batching import Batcher
        from fedmoe_flwr.tools.inference import Assistant, run_app_config

        self.run = run
        self.assistant = Assistant(run, run_app_config(run))
        self.batcher = Batcher(self.assistant, self.route, max_batch=max_batch,
                               max_queue=max_queue, window=window_ms / 1000)

    def models(self) -> list[str]:
        """``auto``, the experts, and the gateway when the run has one."""
        return model_names(self.run)

    def route(self, req: ChatRequest) -> Route:
        """The experts a request uses: routed for ``auto``, else the one it names."""
        if req.model == "auto":
            return self.assistant.router.route(req.prompt)
        if req.model == GATEWAY:
            return Route([], {}, {}, "explicit")
        return Route([req.model], {req.model: 1.0}, {}, "explicit")

    def check(self, req: ChatRequest) -> list[int]:
        """The prompt's token ids; 400 for a conversation that does not fit with its answer."""
        try:
            return self.assistant.encode_chat(req.messages, req.max_tokens)[0].tolist()
        except SettingError as err:
            raise ApiError(400, str(err), param="messages") from None

    def submit(self, req: ChatRequest, ids: list[int], reply: Reply) -> Any:
        """Queue a request for generation; 503 when the queue is full."""
        from fedmoe_flwr.tools.batching import Job, Overloaded

        job = Job(req, ids, reply.emit)
        try:
            self.batcher.submit(job)
        except Overloaded as err:
            raise ApiError(503, str(err), "server_error") from None
        return job


class Reply:
    """A job's events, carried from the generation thread to the request's event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def emit(self, kind: str, value: Any) -> None:
        """Called by the generation thread (thread-safe)."""
        self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))

    async def answer(self) -> tuple[Any, dict[str, int], int]:
        """``(Answer, versions, rows batched)``; the failure as an :class:`ApiError`."""
        while True:
            kind, value = await self.events.get()
            if kind == "done":
                return value
            if kind == "error":
                raise failure(value)


def failure(err: BaseException) -> Exception:
    """A generation error as the client sees it (run directory errors keep their handler)."""
    from fedmoe_flwr.server.rundir import RunDirError

    if isinstance(err, (ApiError, RunDirError)):
        return err
    if isinstance(err, SettingError):
        return ApiError(400, str(err), param=err.setting)
    return ApiError(500, f"generation failed: {type(err).__name__}: {err}", "server_error")


def completion_body(req: ChatRequest, answer: Any, versions: dict[str, int],
                    rows: int = 1) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object, plus the experts and versions used."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
        "created": int(time.time()), "model": req.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                     "finish_reason": answer.finish_reason}],
        "usage": {"prompt_tokens": answer.prompt_tokens,
                  "completion_tokens": answer.completion_tokens,
                  "total_tokens": answer.prompt_tokens + answer.completion_tokens},
        "fedmoe": _used(answer, versions, len(req.messages), rows),
    }


def _used(answer: Any, versions: dict[str, int], messages: int = 1,
          rows: int = 1) -> dict[str, Any]:
    return {"experts": answer.route.experts, "weights": answer.route.weights,
            "adapter": answer.adapter, "router": answer.route.method,
            "versions": {n: versions[n] for n in answer.route.experts if n in versions},
            "messages_used": messages, "routed_on": "the last user message",
            "batch_rows": rows}


def _chunk(cid: str, req: ChatRequest, delta: dict, finish: str | None = None,
           extra: dict | None = None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": req.model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}], **(extra or {})}
    return f"data: {json.dumps(body)}\n\n"


async def stream_completion(req: ChatRequest, job: Any, reply: Reply) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, content chunks as tokens come, a final chunk.

    A client that leaves mid-answer cancels its job: its row stops at the next step.
    """
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    try:
        yield _chunk(cid, req, {"role": "assistant", "content": ""})
        while True:
            kind, value = await reply.events.get()
            if kind == "text":
                yield _chunk(cid, req, {"content": value})
                continue
            if kind == "error":
                err = failure(value)
                body = err.body() if isinstance(err, ApiError) else \
                    ApiError(500, str(err), "server_error").body()
                yield f"data: {json.dumps(body)}\n\n"
                break
            answer, versions, rows = value
            yield _chunk(cid, req, {}, answer.finish_reason, {
                "usage": {"prompt_tokens": answer.prompt_tokens,
                          "completion_tokens": answer.completion_tokens,
                          "total_tokens": answer.prompt_tokens + answer.completion_tokens},
                "fedmoe": _used(answer, versions, len(req.messages), rows)})
            break
        yield "data: [DONE]\n\n"
    finally:
        job.cancelled = True  # no-op once answered; stops the row of a client that left


def adapter_info(run: RunView, name: str) -> dict[str, Any]:
    """Name, kind, version, LoRA shape and what meta.json says (losses, counters)."""
    info = run.adapter(name)
    return {"name": info.name, "kind": info.kind, "version": info.version,
            "lora_r": info.config.get("r"), "lora_alpha": info.config.get("lora_alpha"),
            "size_bytes": info.size_bytes,
            "meta": {k: v for k, v in info.meta.items() if k != "sha256"}}


def adapter_download(run: RunView, name: str, fmt: str) -> tuple[bytes, str, str]:
    """``(bytes, media type, file name)`` of an adapter: a PEFT directory zip, or npz."""
    info = run.adapter(name)
    info.weights()  # verified before it is handed out
    if fmt == "peft":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for file in ("adapter_config.json", "adapter_model.safetensors", "meta.json"):
                zf.write(info.path / file, f"{name}/{file}")
        return buf.getvalue(), "application/zip", f"{name}-v{info.version}.zip"
    if fmt == "npz":
        from fedmoe_flwr.tools.export import save_npz

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "a.npz"
            save_npz(path, info)
            return path.read_bytes(), "application/octet-stream", f"{name}-v{info.version}.npz"
    raise ApiError(400, f"format must be peft or npz, got {fmt!r}", param="format")


def parse_body(raw: bytes) -> Any:
    """The request body as JSON, refused (400) when it is not JSON or nests too deeply."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise ApiError(400, f"the request body nests deeper than {MAX_JSON_DEPTH} "
                            f"levels") from None
    except ValueError:
        raise ApiError(400, "the request body is not JSON (UTF-8)") from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise ApiError(400, f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    return body


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (a body of 10^5 levels is refused)."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        children = item.values() if isinstance(item, dict) else (
            item if isinstance(item, list) else ())
        todo += [(c, level + 1) for c in children if isinstance(c, (dict, list))]
    return deepest


def check_server_settings(port: int, api_key: str | None) -> None:
    """Refuse at start-up what could never work: a port out of range, a key with spaces."""
    from fedmoe_flwr.config import ConfigError

    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"--port must be a whole number in [1, 65535], got {port!r}")
    if api_key is not None and (not api_key or api_key != api_key.strip()
                                or any(c.isspace() or not c.isprintable() for c in api_key)):
        raise ConfigError("the API key (--api-key / FEDMOE_API_KEY) must be printable text "
                          "without spaces: a client sends it as 'Authorization: Bearer KEY', "
                          "which cannot carry surrounding spaces")


MAX_BATCH, MAX_QUEUE, MAX_WINDOW_MS = 256, 4096, 1000.0


def check_batching(max_batch: int, max_queue: int, window_ms: float) -> None:
    """Refuse at start-up batching settings that make no sense (before the model loads)."""
    from fedmoe_flwr.config import ConfigError

    for flag, value, hi in (("--max-batch", max_batch, MAX_BATCH),
                            ("--max-queue", max_queue, MAX_QUEUE)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ConfigError(f"{flag} must be a whole number in [1, {hi}], got {value!r}")
    if not isinstance(window_ms, (int, float)) or isinstance(window_ms, bool) \
            or not 0 <= window_ms <= MAX_WINDOW_MS:
        raise ConfigError(f"--batch-window-ms must be in [0, {MAX_WINDOW_MS:g}] "
                          f"milliseconds, got {window_ms!r}")


def check_key(api_key: str | None, header: str | None) -> None:
    """Refuse a request without the right bearer key (constant-time comparison)."""
    if not api_key:
        return
    given = header[len("Bearer "):] if (header or "").startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode("utf-8", "replace"),
                                            api_key.encode()):
        raise ApiError(401, "missing or wrong API key (Authorization: Bearer KEY)",
                       "authentication_error")
