"""Ask the federation: route a prompt to expert(s) and generate with their adapter(s).

The base model is loaded exactly as the nodes loaded it (the run's
``run_config.json``: model name, quantization, LoRA shape), every expert is
attached as a named PEFT adapter, and the router picks which one(s) answer.
With several experts, ``mix`` merges them into one adapter with the exact
``cat`` merge weighted by the routing weights, and ``stitch`` generates one
answer per expert and joins them, as the original FedMoE agent did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from fedmoe_flwr.config import AppConfig, ConfigError, RouterConfig, parse_run_config
from fedmoe_flwr.contract import GATEWAY
from fedmoe_flwr.merge.gateway import build_gateway
from fedmoe_flwr.node.adapters import set_adapter_weights
from fedmoe_flwr.node.data import encode_prompt
from fedmoe_flwr.node.embedding import prompt_embeddings
from fedmoe_flwr.node.model import LoadedModel, ensure_adapter, load_base
from fedmoe_flwr.routing.arrow import attach_arrow, detach_arrow
from fedmoe_flwr.routing.centroids import ROUTER_FILE, load_centroids, load_ngram_counts
from fedmoe_flwr.routing.router import Route, Router, RouterSources
from fedmoe_flwr.server.rundir import RunView
from fedmoe_flwr.tools.limits import check_fits, check_generation, check_router, check_text


@dataclass(frozen=True)
class Answer:
    """What ``fedmoe ask`` prints."""

    text: str
    route: Route
    adapter: str  # the adapter that generated (an expert, "mix", or "gateway")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" (end of answer) or "length" (max_new_tokens)


def run_app_config(run: RunView, **router_overrides: Any) -> AppConfig:
    """The run's own config (``run_config.json``), with router settings overridden."""
    try:
        cfg = parse_run_config(run.run_config())
    except ConfigError as err:
        raise ConfigError(f"{run.root / 'run_config.json'}: {err}") from None
    return replace(cfg, router=check_router(cfg.router, **router_overrides))


def load_run_base(run: RunView, cfg: AppConfig) -> LoadedModel:
    """The run's base model, or one line naming ``run_config.json`` when it cannot load.

    A model name that is not on this machine and cannot be downloaded (a
    typo, a damaged file, no network) otherwise ends the command with the
    hub client's traceback, which names neither the file nor the key.
    """
    where = run.root / "run_config.json"
    try:
        return load_base(cfg.model)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    except (OSError, ValueError) as err:  # hub: not found, offline, gated; a broken model
        raise ConfigError(f"{where}: model.name {cfg.model.name!r} cannot be loaded "
                          f"({type(err).__name__}: {' '.join(str(err).split())[:160]})"
                          ) from None


def model_centroids(root: Path, loaded: LoadedModel) -> dict[str, Any]:
    """``router.json``'s centroids, refused when they are not of this model's width.

    A centroid of another width (another base model's, or an edited file)
    cannot be compared with this model's embeddings at all: one line naming the
    file and field instead of numpy's broadcast error.
    """
    centroids = load_centroids(root)
    hidden = int(getattr(loaded.peft_model.config, "hidden_size", 0) or 0)
    for name, vec in centroids.items():
        if hidden and vec.shape != (hidden,):
            raise ConfigError(f"{root / ROUTER_FILE} is damaged: field "
                              f"'specialties.{name}.centroid' has {vec.size} dimensions, "
                              f"the base model's embeddings {hidden}")
    return centroids


@torch.no_grad()
def prompt_token_loss(model: torch.nn.Module, ids: torch.Tensor, content: torch.Tensor) -> float:
    """Mean next-token loss of the active adapter on the marked tokens of ``ids`` ``(1, T)``.

    The first token has no prediction, so ``content[0]`` never counts.
    """
    logits = model(input_ids=ids).logits[0, :-1].float()  # position t predicts ids[t + 1]
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
    return float(nll[content[1:]].mean())


class SoleExpert:
    """The router of a run with one adapter (the peer's ``global``): nothing to choose."""

    method = "sole"

    def __init__(self, name: str) -> None:
        self.name = name

    def route_many(self, prompts: list[str]) -> list[Route]:
        """Every prompt goes to the one adapter."""
        return [Route([self.name], {self.name: 1.0}, {self.name: 0.0}, self.method)
                for _ in prompts]

    def route(self, prompt: str) -> Route:
        """The one adapter."""
        return self.route_many([prompt])[0]


class Assistant:
    """The base model with every expert of a run attached, and a router."""

    def __init__(self, run: RunView, cfg: AppConfig) -> None:
        self.run = run
        self.cfg = cfg
        self.loaded = load_run_base(run, cfg)
        self.model = self.loaded.peft_model
        self.versions: dict[str, int] = {}  # expert -> checkpoint version in memory
        self._weights: dict[str, dict] = {}
        self.experts: list[str] = []
        self.refresh()  # loads every expert and builds the router

    def make_router(self, rcfg: RouterConfig) -> Router:
        """A router of any registered method over this run's experts."""
        root, layer = self.run.root, self.cfg.router.embedding_layer
        sources = RouterSources(
            centroids=lambda: model_centroids(root, self.loaded),
            ngram_counts=lambda: load_ngram_counts(root),
            embed=lambda prompts: prompt_embeddings(self.loaded, prompts, layer=layer),
            prompt_losses=self.prompt_losses)
        return Router(rcfg, self.experts, sources)

    @torch.no_grad()
    def prompt_losses(self, prompt: str) -> dict[str, float]:
        """Per-expert loss that the ``loss`` router minimises.

        By default each expert scores the prompt's own tokens: experts trained
        with ``train.prompt-loss-weight > 0`` model their domain's prompts, so
        the lowest loss names the domain (p(domain | x) ~ p(x | domain)).  Only
        the user's words count (see :func:`~fedmoe_flwr.data.encode_prompt`).  With
        ``router.candidate-tokens = N`` each expert instead drafts N answer
        tokens and scores its own draft (its confidence), for runs whose
        experts never saw a prompt loss.
        """
        ids, content = self._encode_prompt(prompt)
        self.model.eval()
        out = {}
        n = self.cfg.router.candidate_tokens
        for name in self.experts:
            self.model.set_adapter(f"x:{name}")
            if not n:
                out[name] = prompt_token_loss(self.model, ids, content)
                continue
            draft = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                do_sample=False, top_p=None, top_k=None, temperature=None,
                pad_token_id=self.loaded.tokenizer.pad_token_id)
            answer = torch.zeros_like(draft[0], dtype=torch.bool)
            answer[ids.shape[1]:] = True  # the drafted answer only
            out[name] = prompt_token_loss(self.model, draft, answer)
        return out

    def _encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Templated prompt ids ``(1, T)`` and a ``(T,)`` mask of the user's own tokens."""
        ids, content = encode_prompt(self.loaded.tokenizer, prompt, self.cfg.train.max_seq_len)
        dev = self.loaded.device
        return torch.tensor([ids], device=dev), torch.tensor(content, device=dev)

    def _arrow(self) -> str:
        """PEFT's Arrow adapter over every expert (built once per set of expert versions)."""
        attach_arrow(self.model, self.experts, list(self.cfg.model.target_modules),
                     self.cfg.model.lora_r, self.cfg.run.seed)
        return "arrow(" + "+".join(self.experts) + ")"

    def _use(self, route: Route) -> str:
        """Activate the adapter for a route: one expert, their cat mix, or the gateway."""
        if route.method == "arrow":
            return self._arrow()
        if not route.experts:
            info = self.run.adapter(GATEWAY)
            self.add_slot("x:gateway", info.config["r"], info.config["lora_alpha"])
            set_adapter_weights(self.model, "x:gateway", info.weights())
            self.model.set_adapter("x:gateway")
            return GATEWAY
        if len(route.experts) == 1:
            self.model.set_adapter(f"x:{route.experts[0]}")
            return route.experts[0]
        m = self.cfg.model
        mix = build_gateway({n: self._weights[n] for n in route.experts}, route.weights, "cat",
                            rank=m.lora_r, alpha=m.lora_alpha)
        slot = f"x:mix-r{mix.rank}"
        self.add_slot(slot, mix.rank, mix.alpha)
        set_adapter_weights(self.model, slot, mix.weights)
        self.model.set_adapter(slot)
        return "mix(" + "+".join(route.experts) + ")"

    def add_slot(self, slot: str, rank: int, alpha: int) -> None:
        """A scratch adapter (a mix, the gateway) of this shape, active; Arrow goes first."""
        if slot not in self.model.peft_config:
            detach_arrow(self.model)  # it would take the new adapter for one more expert
        ensure_adapter(self.loaded, slot, self.cfg.model, rank, alpha)

    def expert_weights(self, name: str) -> dict:
        """An expert's weights in memory (the batched server builds its mixes from them)."""
        return self._weights[name]

    def encode_chat(self, messages: list[dict[str, str]], max_new_tokens: int) -> torch.Tensor:
        """The conversation's templated ids ``(1, T)``, refused when it does not fit.

        The whole conversation (a system message and earlier turns too) is
        what the model reads, through the tokenizer's chat template, as the
        nodes' prompts were templated in training.
        """
        tok = self.loaded.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        ids = tok(text, add_special_tokens=False)["input_ids"]
        context = int(getattr(self.loaded.peft_model.config, "max_position_embeddings", 0)
                      or 1 << 30)
        check_fits(len(ids), max_new_tokens, context)
        return torch.tensor([ids], device=self.loaded.device)

    @torch.no_grad()
    def _generate(self, messages: list[dict[str, str]], max_new_tokens: int,
                  temperature: float, seed: int,
                  streamer: Any = None) -> tuple[str, int, int, str]:
        """Text, prompt tokens, completion tokens and finish reason of one generation."""
        tok = self.loaded.tokenizer
        ids = self.encode_chat(messages, max_new_tokens)
        torch.manual_seed(seed)
        self.model.eval()
        out = self.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
            do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
            top_p=None, top_k=None, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
            streamer=streamer)
        new = out[0, ids.shape[1]:]
        ended = bool(len(new)) and int(new[-1]) == tok.eos_token_id
        reason = "stop" if ended or len(new) < max_new_tokens else "length"
        return (tok.decode(new, skip_special_tokens=True).strip(), int(ids.shape[1]),
                int(len(new)), reason)

    def refresh(self) -> dict[str, int]:
        """Load every expert checkpoint newer than the one in memory; returns the versions.

        A run that is still training writes new versions atomically; reading the
        resolved version directory (checksum verified) never sees half an adapter.
        """
        changed = False
        for info in self.run.experts():
            if self.versions.get(info.name) == info.version:
                continue
            weights = info.weights()
            detach_arrow(self.model)  # its prototypes come from the experts
            ensure_adapter(self.loaded, f"x:{info.name}", self.cfg.model)
            set_adapter_weights(self.model, f"x:{info.name}", weights)
            self._weights[info.name] = weights
            self.versions[info.name] = info.version
            changed = changed or info.name not in self.experts
        if changed:  # a specialty that joined: route to it too
            self.experts = sorted(self.versions)
            self.router = (self.make_router(self.cfg.router) if len(self.experts) > 1
                           else SoleExpert(self.experts[0]))
        return dict(self.versions)

    def ask(self, prompt: str, *, max_new_tokens: int = 128, temperature: float = 0.0,
            seed: int = 0, route: Route | None = None, streamer: Any = None,
            conversation: list[dict[str, str]] | None = None) -> Answer:
        """Route ``prompt`` and generate; deterministic for a given seed.

        ``conversation`` (system message, earlier turns, ending with ``prompt``)
        is what the model reads; the router scores ``prompt``, the question.
        ``streamer`` (a ``transformers`` streamer) receives the tokens as they
        are generated (one adapter only; stitched answers are not streamed).
        Settings are checked by :mod:`fedmoe_flwr.tools.limits`, as everywhere.
        """
        check_text(prompt)
        max_new_tokens, temperature, seed = check_generation(max_new_tokens, temperature, seed)
        messages = conversation or [{"role": "user", "content": prompt}]
        route = route or self.router.route(prompt)
        if self.cfg.router.combine == "stitch" and len(route.experts) > 1:
            parts, used, reasons, n_prompt = [], 0, [], 0
            for name in route.experts:
                self.model.set_adapter(f"x:{name}")
                text, n_prompt, n_new, reason = self._generate(messages, max_new_tokens,
                                                               temperature, seed)
                parts.append(f"[{name}]\n{text}")
                used += n_new
                reasons.append(reason)
            return Answer("\n\n".join(parts), route, "stitch(" + "+".join(route.experts) + ")",
                          n_prompt, used, "length" if "length" in reasons else "stop")
        adapter = self._use(route)
        text, n_prompt, n_new, reason = self._generate(messages, max_new_tokens, temperature,
                                                       seed, streamer)
        return Answer(text, route, adapter, n_prompt, n_new, reason)

