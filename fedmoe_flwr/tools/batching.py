"""Batched generation for ``fedmoe serve``: requests that arrive together are generated together.

One thread owns the model.  It takes up to ``max_batch`` queued requests
(gathering while they keep coming, ``window`` apart at most), loads newer
expert checkpoints (between batches, never inside one), routes each request,
and generates every greedy one in one left-padded batch, each row with its own
adapter: PEFT's ``generate(..., adapter_names=[...])`` applies a different
LoRA to each row of one forward pass.  Why: a forward pass over 16 rows costs
far less than 16 passes of one row (every weight is read once per step, for
all rows), so waiting clients share the model instead of queueing for it.

- Each row stops at its own ``max_tokens`` and at the end-of-answer token
  (:class:`RowStops`), and its answer is handed out the step it ends: a row
  that finished waits for nobody.  It stays in the batch's tensors (padded)
  until the batch ends, which is what a static batch costs.
- A multi-expert ``mix`` route gets a cat-merged adapter in a slot of its own
  (:class:`MixSlots`), so mixes with different weights share one batch.
- Streaming: :class:`RowText` turns each row's new tokens into text pieces
  (incremental decoding that never splits a UTF-8 character or a BPE merge),
  sent to that request alone.
- Sampling (temperature > 0, a per-request seed), PEFT's Arrow and ``stitch``
  are generated alone through :meth:`Assistant.ask`, exactly as one request at
  a time; with ``max_batch = 1`` every request is (the one-at-a-time path).

A full queue refuses a request at once (:class:`Overloaded`, an HTTP 503):
a bounded wait, never a hang.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.merge.gateway import build_gateway
from fedmoe_flwr.node.adapters import set_adapter_weights
from fedmoe_flwr.routing.router import Route
from fedmoe_flwr.tools.inference import Answer, Assistant

log = logging.getLogger(__name__)
Emit = Callable[[str, Any], None]
GATHER_WINDOWS = 10  # a batch gathers requests for at most this many windows


class Overloaded(Exception):
    """The queue is full: the request is refused now rather than left waiting."""


@dataclass(eq=False)
class Job:
    """One request on its way through the generation thread.

    ``req`` has ``prompt``, ``messages``, ``max_tokens``, ``temperature``,
    ``seed`` and ``stream`` (a :class:`~fedmoe_flwr.tools.serve.ChatRequest`);
    ``ids`` are its templated prompt tokens.  ``emit(kind, value)`` is called
    from the generation thread: ``("text", piece)`` while a streamed answer
    grows, then once ``("done", (Answer, versions, rows))`` (``rows``: how many
    requests were generated together) or ``("error", exception)``.
    ``cancelled`` (the client left) stops its row at the next step.
    """

    req: Any
    ids: list[int]
    emit: Emit
    cancelled: bool = False
    finished: bool = False

    def send(self, kind: str, value: Any) -> None:
        """Deliver one event; nothing after the final one, and never raise into the batch."""
        if self.finished:
            return
        self.finished = kind != "text"
        try:
            self.emit(kind, value)
        except Exception:  # the receiver is gone (closed event loop): the row is moot
            log.debug("could not deliver a %s event", kind, exc_info=True)


class RowText:
    """Incremental detokenisation of one answer: the text each new token adds.

    Decoding a token alone is wrong for byte-level BPE (a character may span
    tokens) and for SentencePiece (a piece's leading space depends on what
    precedes it), so each step decodes a short window that starts a few tokens
    back and emits only what the window adds, holding text back while it ends
    in an incomplete UTF-8 sequence (U+FFFD).  :meth:`flush` emits the rest, so
    the pieces join to the whole answer's decoding.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.ids: list[int] = []
        self.sent = ""
        self._prefix = self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        """Add one token; the text that is now certain ("" while it is not)."""
        self.ids.append(token)
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        piece = after[len(before):]
        self.sent += piece
        return piece

    def flush(self) -> str:
        """The text not sent yet, once the answer has ended."""
        whole = self._decode(self.ids)
        if whole.startswith(self.sent):
            piece = whole[len(self.sent):]
        else:  # a tokenizer whose decoding is not prefix-stable: the window's remainder
            piece = self._decode(self.ids[self._prefix:])[
                len(self._decode(self.ids[self._prefix:self._read])):]
        self.sent += piece
        return piece


class JobStreamer(BaseStreamer):
    """A ``transformers`` streamer for a request generated alone: its pieces go to its job."""

    def __init__(self, job: Job, tokenizer: Any) -> None:
        self.job, self.text, self._prompt_seen = job, RowText(tokenizer), False

    def put(self, value: torch.Tensor) -> None:
        """``generate`` passes the prompt first (skipped), then each new token."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            piece = self.text.push(int(token))
            if piece:
                self.job.send("text", piece)

    def end(self) -> None:
        """The answer ended: send what was held back."""
        piece = self.text.flush()
        if piece:
            self.job.send("text", piece)


@dataclass(eq=False)
class Row:
    """One request's row in a batch: its adapter, prompt, limit and what it generated."""

    job: Job
    route: Route
    adapter: str  # the PEFT adapter name of this row (``x:<expert>``, a mix slot, ...)
    label: str  # what ``Answer.adapter`` says (an expert, ``gateway``, ``mix(a+b)``)
    tokens: list[int] = field(default_factory=list)
    text: RowText | None = None
    done: bool = False


class RowStops(StoppingCriteria):
    """Per-row stopping, and the hook that sees every step's new tokens.

    ``generate`` calls it after each step with the whole sequences; the last
    column is the token each row just got.  A row ends at the end-of-answer
    token or at its own ``max_tokens`` (the batch runs to the largest); the
    step it ends, ``finish(row)`` hands its answer out.  Returning the rows
    that ended makes ``generate`` pad them from then on and stop when all did.
    """

    def __init__(self, rows: list[Row], eos: int | None, finish: Callable[[Row], None]) -> None:
        self.rows, self.eos, self.finish = rows, eos, finish

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        """Take each row's new token; one bool per row: it has ended."""
        for row, token in zip(self.rows, input_ids[:, -1].tolist(), strict=True):
            if row.done:
                continue
            if row.job.cancelled:  # the client left: stop spending steps on it
                row.done = True
                continue
            row.tokens.append(token)
            if row.text is not None:
                piece = row.text.push(token)
                if piece:
                    row.job.send("text", piece)
            if token == self.eos or len(row.tokens) >= row.job.req.max_tokens:
                row.done = True
                self.finish(row)
        return torch.tensor([r.done for r in self.rows], dtype=torch.bool,
                            device=input_ids.device)


def finish_row(tokenizer: Any, row: Row, versions: dict[str, int], rows: int) -> None:
    """Hand out one row's answer, counted and cut exactly as a lone generation's."""
    if row.text is not None:
        piece = row.text.flush()
        if piece:
            row.job.send("text", piece)
    eos = tokenizer.eos_token_id
    ended = bool(row.tokens) and row.tokens[-1] == eos
    reason = "stop" if ended or len(row.tokens) < row.job.req.max_tokens else "length"
    text = tokenizer.decode(row.tokens, skip_special_tokens=True).strip()
    row.job.send("done", (Answer(text, row.route, row.label, len(row.job.ids),
                                 len(row.tokens), reason), versions, rows))


def context_of(assistant: Assistant) -> int:
    """How many positions the model reads (as :meth:`Assistant.encode_chat` checks)."""
    return int(getattr(assistant.model.config, "max_position_embeddings", 0) or 1 << 30)


def fitting_groups(rows: list[Row], context: int) -> list[list[Row]]:
    """Rows split so that every group's widest prompt plus longest answer fits the model.

    Left padding makes every row as wide as the widest prompt, and the batch
    runs to the largest ``max_tokens``; each row fits alone (checked when it
    came in), but a long prompt and a long answer from two rows may not.
    """
    groups: list[tuple[int, int, list[Row]]] = []
    for row in rows:
        width, new = len(row.job.ids), row.job.req.max_tokens
        for i, (w, n, members) in enumerate(groups):
            if max(w, width) + max(n, new) <= context:
                groups[i] = (max(w, width), max(n, new), [*members, row])
                break
        else:
            groups.append((width, new, [row]))
    return [members for _, _, members in groups]


@torch.no_grad()
def generate_rows(assistant: Assistant, rows: list[Row], versions: dict[str, int]) -> None:
    """Generate every row in one left-padded batch, one adapter per row (greedy).

    Rows are left-padded so every row's next token is in the last column;
    ``generate`` derives each row's positions from the attention mask, so a row
    reads exactly what it would alone.
    """
    tok, model = assistant.loaded.tokenizer, assistant.model
    width = max(len(r.job.ids) for r in rows)
    pad = tok.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r.job.ids)) + r.job.ids for r in rows],
                       device=assistant.loaded.device)
    mask = torch.tensor([[0] * (width - len(r.job.ids)) + [1] * len(r.job.ids) for r in rows],
                        device=assistant.loaded.device)
    stops = RowStops(rows, tok.eos_token_id,
                     lambda row: finish_row(tok, row, versions, len(rows)))
    model.eval()
    model.generate(
        input_ids=ids, attention_mask=mask,
        max_new_tokens=max(r.job.req.max_tokens for r in rows), do_sample=False,
        temperature=None, top_p=None, top_k=None, pad_token_id=pad,
        eos_token_id=tok.eos_token_id, adapter_names=[r.adapter for r in rows],
        stopping_criteria=StoppingCriteriaList([stops]))
    for row in rows:  # ended with the batch without the hook marking it (a safety net)
        if not row.done and not row.job.cancelled:
            row.done = True
            finish_row(tok, row, versions, len(rows))


class MixSlots:
    """The PEFT adapter each route's row uses: an expert's, the gateway's, or a mix slot.

    A ``mix`` of several experts is their cat merge at the routing weights,
    built as :meth:`Assistant._use` builds it, but in a slot of its own so that
    several mixes share a batch.  Slots are reused: a mix already in a slot
    (same experts, weights and versions) is not rebuilt, and a new one takes
    the least recently used slot of its rank that this batch does not use, so
    at most ``max_batch`` slots per rank ever exist.
    """

    def __init__(self, assistant: Assistant) -> None:
        self.a = assistant
        self._mixes: OrderedDict[tuple, str] = OrderedDict()  # mix -> slot, oldest first
        self._gateway: int | None = None  # the gateway version in the x:gateway slot

    def adapter(self, route: Route, in_use: set[str]) -> tuple[str, str]:
        """``(PEFT adapter name, Answer.adapter label)`` of a route's row."""
        if not route.experts:
            return self._gateway_slot(), GATEWAY
        if len(route.experts) == 1:
            return f"x:{route.experts[0]}", route.experts[0]
        return self._mix_slot(route, in_use), "mix(" + "+".join(route.experts) + ")"

    def _gateway_slot(self) -> str:
        info = self.a.run.adapter(GATEWAY)
        if self._gateway != info.version or "x:gateway" not in self.a.model.peft_config:
            self.a.add_slot("x:gateway", info.config["r"], info.config["lora_alpha"])
            set_adapter_weights(self.a.model, "x:gateway", info.weights())
            self._gateway = info.version
        return "x:gateway"

    def _mix_slot(self, route: Route, in_use: set[str]) -> str:
        key = (tuple(route.experts), tuple(route.weights[n] for n in route.experts),
               tuple(self.a.versions[n] for n in route.experts))
        if key in self._mixes:
            self._mixes.move_to_end(key)
            return self._mixes[key]
        m = self.a.cfg.model
        mix = build_gateway({n: self.a.expert_weights(n) for n in route.experts},
                            route.weights, "cat", rank=m.lora_r, alpha=m.lora_alpha)
        prefix = f"x:mixslot-r{mix.rank}-"
        slot = next((s for k, s in self._mixes.items() if s.startswith(prefix)
                     and s not in in_use), None)
        if slot is None:
            slot = f"{prefix}{sum(s.startswith(prefix) for s in self._mixes.values())}"
        self._mixes = OrderedDict((k, s) for k, s in self._mixes.items() if s != slot)
        self.a.add_slot(slot, mix.rank, mix.alpha)  # drops an Arrow slot first
        set_adapter_weights(self.a.model, slot, mix.weights)
        self._mixes[key] = slot
        return slot


class Batcher:
    """The bounded queue and the one thread that generates for every request.

    Parameters
    ----------
    assistant : Assistant
        The model with the run's experts; only this thread touches it.
    route : callable
        A request -> its :class:`Route` (called after each refresh, in this
        thread: the ``centroid`` and ``loss`` routers run the model).
    max_batch : int
        Rows generated together (1: every request alone, as before batching).
    max_queue : int
        Requests that may wait; one more is refused (:class:`Overloaded`).
    window : float
        Seconds without a new request after which the free thread starts the
        batch (at most ``GATHER_WINDOWS`` windows after its first request).
    """

    def __init__(self, assistant: Assistant, route: Callable[[Any], Route], *,
                 max_batch: int = 16, max_queue: int = 64, window: float = 0.005,
                 start: bool = True) -> None:
        self.a, self.route = assistant, route
        self.max_batch, self.window = max_batch, window
        self.queue: queue.Queue[Job] = queue.Queue(max_queue)
        self.slots = MixSlots(assistant)
        self.batches: list[int] = []  # rows per batched generation (recent; for the tests)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fedmoe-generate", daemon=True)
        if start:
            self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job, or refuse it at once when ``max_queue`` jobs are waiting."""
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise Overloaded(f"the server is busy: {self.queue.maxsize} requests are waiting "
                             f"(--max-queue {self.queue.maxsize}); retry in a moment") from None

    def close(self) -> None:
        """Stop the thread after the batch in progress (jobs still queued are failed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        while not self.queue.empty():
            self.queue.get_nowait().send("error", RuntimeError("the server is shutting down"))

    def take(self) -> list[Job]:
        """The next batch: the first waiting job, and those that follow it closely.

        The batch closes once no request came for ``window`` seconds, or
        ``GATHER_WINDOWS`` windows after the first one: the clients of a batch
        that just ended get their answers together and send their next
        requests one after another, a few milliseconds apart each, so a fixed
        window split them into a full batch and a straggling small one.  A lone
        client waits one window, as before.
        """
        while not self._stop.is_set():
            try:
                jobs = [self.queue.get(timeout=0.2)]
                break
            except queue.Empty:
                continue
        else:
            return []
        deadline = time.monotonic() + self.window * GATHER_WINDOWS
        last = time.monotonic()
        while len(jobs) < self.max_batch:
            wait = min(last + self.window, deadline) - time.monotonic()
            try:
                jobs.append(self.queue.get(timeout=max(0.0, wait)))
            except queue.Empty:
                break
            last = time.monotonic()
        return jobs

    def _loop(self) -> None:
        while not self._stop.is_set():
            jobs = self.take()
            try:
                self.serve(jobs)
            except Exception as err:  # a failed refresh: every waiting client hears why
                for job in jobs:
                    job.send("error", err)

    def serve(self, jobs: list[Job]) -> None:
        """Refresh, route, then generate the batchable jobs together and the rest alone."""
        jobs = [j for j in jobs if not j.cancelled]
        if not jobs:
            return
        self.a.refresh()  # between batches: a batch never sees two versions of an expert
        versions = dict(self.a.versions)
        rows, alone = self._plan(jobs)
        for group in fitting_groups(rows, context_of(self.a)):
            try:
                self.batches = [*self.batches[-99:], len(group)]
                generate_rows(self.a, group, versions)
            except Exception as err:  # the batch failed: every row still waiting hears why
                for row in group:
                    row.job.send("error", err)
        for job, route in alone:
            try:
                self._alone(job, route, versions)
            except Exception as err:
                job.send("error", err)

    def _plan(self, jobs: list[Job]) -> tuple[list[Row], list[tuple[Job, Route]]]:
        """Each job's route and row; the jobs a mixed greedy batch cannot do go alone."""
        rows: list[Row] = []
        alone: list[tuple[Job, Route]] = []
        stitch = self.a.cfg.router.combine == "stitch"
        for job in jobs:
            try:
                route = self.route(job.req)
                if self.max_batch == 1 or job.req.temperature > 0 or route.method == "arrow" \
                        or (stitch and len(route.experts) > 1):
                    alone.append((job, route))
                    continue
                adapter, label = self.slots.adapter(route, {r.adapter for r in rows})
            except Exception as err:
                job.send("error", err)
                continue
            text = RowText(self.a.loaded.tokenizer) if job.req.stream else None
            rows.append(Row(job, route, adapter, label, text=text))
        return rows, alone

    def _alone(self, job: Job, route: Route, versions: dict[str, int]) -> None:
        """One request exactly as before batching: :meth:`Assistant.ask`."""
        req = job.req
        streamer = JobStreamer(job, self.a.loaded.tokenizer) if req.stream else None
        answer = self.a.ask(req.prompt, max_new_tokens=req.max_tokens,
                            temperature=req.temperature, seed=req.seed, route=route,
                            streamer=streamer, conversation=req.messages)
        if streamer is not None and not streamer.text.ids and answer.text:
            job.send("text", answer.text)  # stitched answers are not streamed token by token
        job.send("done", (answer, versions, 1))
