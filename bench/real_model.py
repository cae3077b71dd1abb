"""Experts on a real pretrained model, judged by running the code they write.

Reproduce (about 70 minutes on 2 CPU cores)::

    bash scripts/bench.sh real_model                 # every stage
    bash scripts/bench.sh real_model --stages score  # re-score finished runs

The same federation of three specialties (one node each) on SmolLM2-135M-Instruct
(``conf/smollm2.toml``: 20 minutes of training) under ``fedasync`` and under
the peer ``flower-fedavg`` (one global adapter on every node, what FlowerTune
does), with the same nodes, data, seed and budget; then, for the base model,
every expert, the gateway, the router's choice (``auto``) and the peer:

- execution pass rate on the hand-written task sets of ``data/eval/exec/``
  (``fedmoe evaluate``: SQL run in sqlite, Python run against its tests, in
  the sandbox); an expert is judged on its own domain's tasks;
- held-out loss per domain (the nodes' own final evaluation);
- loss on the hand-written natural prompts of ``data/eval/`` (``fedmoe score``);
- routing accuracy of every router on the natural prompts (``fedmoe route-eval``),
  after choosing ``router.embedding-layer`` for the centroid router by
  measurement (stage ``layers``);
- tokens per second per node while training;
- a few answers of the base model and of the routed experts (``fedmoe ask``).

Stages: ``layers``, ``train``, ``score`` (a finished federation is not run again);
``--stages report`` writes the Markdown again from ``bench/results/real_model.json``.
Writes ``bench/results/real_model.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from federation_runs import ROOT, SPECIALTIES, publish, run_federation, update_events

PRESET = ROOT / "conf" / "smollm2.toml"
TASKS = [ROOT / "data" / "eval" / "exec" / f"{d}.jsonl" for d in ("sql", "python")]
NATURAL = [ROOT / "data" / "eval" / f"{d}.jsonl" for d in ("python", "sql", "docs")]
ASK = ["Tables: orders(id, customer_id, amount). Write a SQL query that returns the total "
       "amount per customer_id.",
       "Write a Python function `is_palindrome(s)` that ignores case and spaces.",
       "Write a docstring for a function that retries an HTTP request three times."]
LAYERS = (0, 4, 8, 12, 16, 20, 24, 30)


def preset() -> dict:
    """The run config of ``conf/smollm2.toml``."""
    return tomllib.loads(PRESET.read_text())


def all_layers(loaded: object, prompts: list[str]) -> dict[int, object]:
    """Layer -> ``(n, hidden)`` unit embeddings, as the nodes compute them, in one pass.

    The same pooling as :func:`fedmoe_flwr.node.embedding.prompt_embeddings`
    (mean over the chat-templated prompt's tokens, L2-normalised), for every
    layer of :data:`LAYERS` at once.
    """
    import numpy as np
    import torch

    from fedmoe_flwr.node.data import prompt_text

    tok, model = loaded.tokenizer, loaded.peft_model
    out: dict[int, list] = {layer: [] for layer in LAYERS}
    model.eval()
    with torch.no_grad(), model.disable_adapter():
        for start in range(0, len(prompts), 16):
            texts = [prompt_text(tok, p) for p in prompts[start:start + 16]]
            batch = tok(texts, return_tensors="pt", padding=True, truncation=True,
                        max_length=128, add_special_tokens=False)
            states = model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].unsqueeze(-1).float()
            for layer in LAYERS:
                pooled = (states[layer].float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[layer].append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return {layer: np.concatenate(v) for layer, v in out.items()}


def sweep_layers(out: dict) -> int:
    """Centroid routing accuracy on the natural prompts per hidden-states layer; the best."""
    import numpy as np

    from fedmoe_flwr.config import ModelConfig, RouterConfig, parse_run_config
    from fedmoe_flwr.node.data import load_local_data
    from fedmoe_flwr.node.embedding import prompt_embeddings
    from fedmoe_flwr.node.model import load_base
    from fedmoe_flwr.routing.router import Router, RouterSources
    from fedmoe_flwr.tools.route_eval import evaluate_router, load_labelled

    cfg = parse_run_config(preset())
    loaded = load_base(ModelConfig(name="smollm2-135m", quantization=0))
    examples = load_labelled(NATURAL, cfg)
    domains = list(cfg.sim.specialties)
    train = [list(load_local_data(ROOT / p, cfg.data.eval_fraction).train["prompt"])
             [: cfg.router.centroid_examples] for p in cfg.sim.data_paths]
    questions = [p for p, _ in examples]
    emb = all_layers(loaded, [p for ps in train for p in ps] + questions)
    bounds = np.cumsum([0] + [len(ps) for ps in train])
    accuracy = {}
    for layer in LAYERS:
        e = emb[layer]
        cents = {d: e[bounds[i]:bounds[i + 1]].mean(axis=0) for i, d in enumerate(domains)}
        lookup = dict(zip(questions, e[bounds[-1]:], strict=False))

        def embed(ps: list[str], q: dict = lookup, lay: int = layer) -> np.ndarray:
            missing = [p for p in ps if p not in q]  # clauses of multi-part prompts
            if missing:
                q.update(zip(missing, prompt_embeddings(loaded, missing, layer=lay),
                             strict=True))
            return np.stack([q[p] for p in ps])

        router = Router(RouterConfig(method="centroid"), domains, RouterSources(
            centroids=lambda c=cents: c, embed=embed))
        accuracy[layer] = evaluate_router(router, examples).accuracy
        print(f"centroid router, layer {layer:>2}: {accuracy[layer]:.1%}", flush=True)
    out["layers"] = {str(k): v for k, v in accuracy.items()}
    return max(accuracy, key=accuracy.get)


def train(work: Path, layer: int) -> dict[str, Path]:
    """The two federations (kept when already finished)."""
    runs = {}
    for name, strategy in (("experts", "fedasync"), ("peer", "flower-fedavg")):
        run_dir = work / name
        if not (run_dir / "summary.json").exists():
            # robust.enabled = false: the robust checks still measure every update (keep,
            # cos, norm_ratio in metrics.jsonl), so this run's honest statistics can be held
            # against the defaults without a refusal changing what is being measured.
            run_federation(work, name, {**preset(), "strategy.name": strategy,
                                        "router.embedding-layer": layer,
                                        "robust.enabled": False}, nodes=3,
                           timeout=3 * 3600)
        runs[name] = run_dir
    return runs


def pass_rates(runs: dict[str, Path], gen_tokens: int, done: dict | None = None,
               save: Any = None) -> dict:
    """Execution pass rates: base, own-domain experts, gateway, auto, the peer's global.

    ``done`` holds the rates already judged for these runs and this generation length
    (each takes minutes on a CPU); ``save`` is called after each new one, so a
    re-score after an interruption judges only what is missing.
    """
    from fedmoe_flwr.execution import check_answers, load_tasks
    from fedmoe_flwr.execution import pass_rates as rates
    from fedmoe_flwr.server.rundir import RunView
    from fedmoe_flwr.tools.evaluate import GenerationSettings, answers_of
    from fedmoe_flwr.tools.inference import Assistant, run_app_config

    tasks = load_tasks(TASKS)
    gen = GenerationSettings(max_new_tokens=gen_tokens, batch_size=16)
    out: dict[str, dict] = dict(done or {})

    def judge(assistant: Assistant, name: str, subset: list, label: str) -> None:
        if label in out:
            print(f"{label}: {out[label]} (judged before)", flush=True)
            return
        answers = answers_of(assistant, name, subset, gen)
        out[label] = rates(subset, check_answers(list(zip(subset, answers, strict=True))))
        print(f"{label}: {out[label]}", flush=True)
        if save is not None:
            save(out)

    run = RunView(runs["experts"])
    assistant = Assistant(run, run_app_config(run))
    judge(assistant, "base", tasks, "base")
    for specialty in ("sql_expert", "python_expert"):
        judge(assistant, specialty, [t for t in tasks if t.specialty == specialty], specialty)
    judge(assistant, "gateway", tasks, "gateway")
    judge(assistant, "auto", tasks, "auto (ngrams)")
    judge(assistant, "arrow", tasks, "arrow")
    # the oracle (each task answered by its own domain's expert) is the experts' rows
    out["oracle"] = {s: out[s][s] for s in ("sql_expert", "python_expert")}
    peer = RunView(runs["peer"])
    judge(Assistant(peer, run_app_config(peer)), "global", tasks, "peer (global)")
    return out


def losses_and_routing(runs: dict[str, Path]) -> dict:
    """Held-out and natural-prompt losses, routing accuracy of every router, tokens/s."""
    from fedmoe_flwr.routing import router_names
    from fedmoe_flwr.server.rundir import RunView
    from fedmoe_flwr.tools.inference import Assistant, run_app_config
    from fedmoe_flwr.tools.route_eval import evaluate_router, load_labelled
    from fedmoe_flwr.tools.scoring import score_files

    out: dict = {"held_out": {}, "natural": {}, "routing": {}, "tokens_per_s": {}}
    for label, run_dir in runs.items():
        summary = json.loads((run_dir / "summary.json").read_text())
        out["held_out"][label] = summary["eval"]["final"]
        run = RunView(run_dir)
        out["natural"][label] = score_files(run, run_app_config(run), NATURAL)
        speeds: dict[str, list[float]] = {}
        for e in update_events(run_dir):
            speeds.setdefault(e.specialty, []).append(e.tokens / max(e.train_seconds, 1e-9))
        out["tokens_per_s"][label] = {s: statistics.median(v) for s, v in speeds.items()}
    run = RunView(runs["experts"])
    cfg = run_app_config(run)
    assistant = Assistant(run, cfg)
    examples = load_labelled(NATURAL, cfg)
    for method in router_names():
        report = evaluate_router(assistant.make_router(replace(cfg.router, method=method)),
                                 examples)
        out["routing"][method] = {"all": report.accuracy, **report.per_specialty()}
    out["answer_loss"] = routed_answer_losses(assistant)
    out["ask"] = ask_examples(assistant)
    return out


def routed_answer_losses(assistant: object) -> dict:
    """Loss of each natural prompt's reference answer under arrow, ngrams' top-1 and the oracle.

    The oracle is the prompt's own domain's expert (what a perfect per-prompt router
    picks); multi-domain prompts count with the domain their file gives.
    """
    from fedmoe_flwr.node.data import encode_example
    from fedmoe_flwr.node.training import evaluate_loss
    from fedmoe_flwr.routing.router import Route

    rows = []
    for path in NATURAL:
        for line in path.read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
    tok, model = assistant.loaded.tokenizer, assistant.model
    picks = {"arrow": lambda r: Route(list(assistant.experts), {}, {}, "arrow"),
             "ngrams top-1": lambda r: Route([assistant.router.route(r["prompt"]).best],
                                             {}, {}, "top1"),
             "oracle": lambda r: Route([r["specialty"]], {}, {}, "oracle")}
    out: dict[str, dict[str, float]] = {}
    for label, pick in picks.items():
        sums: dict[str, list[float]] = {}
        for r in rows:
            assistant._use(pick(r))
            ex = encode_example(tok, r["prompt"], r["reference_code"], 512)
            loss = evaluate_loss(model, [ex], pad_id=tok.pad_token_id,
                                 device=assistant.loaded.device)
            sums.setdefault(r["specialty"], []).append(loss)
        out[label] = {s: statistics.mean(v) for s, v in sums.items()}
        out[label]["all"] = statistics.mean(x for v in sums.values() for x in v)
        print(f"answer loss, {label}: {out[label]}", flush=True)
    return out


def ask_examples(assistant: object) -> list[dict]:
    """The base model's and the routed experts' answers to a few questions."""
    from fedmoe_flwr.tools.generation import generate_batch

    with assistant.model.disable_adapter():
        base = generate_batch(assistant.loaded, ASK, max_new_tokens=120)
    routed = [assistant.ask(q, max_new_tokens=120) for q in ASK]
    return [{"question": q, "base": b, "routed": a.text, "adapter": a.adapter}
            for q, b, a in zip(ASK, base, routed, strict=True)]


def table(results: dict) -> list[str]:
    """The Markdown report."""
    p = results["pass_rates"]
    lines = ["# Experts on SmolLM2-135M-Instruct, judged by execution", "",
             "`bash scripts/bench.sh real_model` (conf/smollm2.toml: three nodes, one per "
             "specialty, 20 min of training each run, on 2 CPU cores).", "",
             "## Execution pass rate (data/eval/exec/: 48 SQL, 50 Python tasks)", "",
             "| adapter | SQL | Python |", "|---|---:|---:|"]
    for label, r in p.items():
        lines.append(f"| {label} | {_pct(r.get('sql_expert'))} | {_pct(r.get('python_expert'))} |")
    lines += ["", "An expert is judged on its own domain's tasks; `auto` is the router's choice "
              "per task; `peer (global)` is flower-fedavg's one adapter.", ""] + verdict(p) + [
              "",
              "## Held-out loss per domain (final, the nodes' evaluation)", ""]
    lines += _matrix(results["losses"]["held_out"])
    lines += ["", "## Loss on the hand-written natural prompts (data/eval/)", ""]
    lines += _matrix({k: {Path(f).stem: row for f, row in v.items()}
                      for k, v in results["losses"]["natural"].items()})
    lines += ["", "## Routing accuracy on the natural prompts (top-1)", "",
              "| router | all | " + " | ".join(SPECIALTIES) + " |",
              "|---|---:|" + "---:|" * len(SPECIALTIES)]
    for method, r in results["losses"]["routing"].items():
        if method == "arrow":  # token-level: every expert ties at the prompt level
            continue
        lines.append(f"| {method} | {_pct(r['all'])} | " +
                     " | ".join(_pct(r.get(s)) for s in SPECIALTIES) + " |")
    if "layers" in results:
        lines += ["", "Centroid router by `router.embedding-layer` (hidden_states index): " +
                  ", ".join(f"{k}: {_pct(v)}" for k, v in results["layers"].items()) + "."]
    lines += ["", "`arrow` is not in this table: it routes each token, so at the prompt level "
              "every expert ties.", "",
              "## Token-level routing (Arrow) against a per-prompt choice and the oracle", "",
              "Mean loss of the natural prompts' reference answers (lower is better):", "",
              "| adapter | all | " + " | ".join(SPECIALTIES) + " |",
              "|---|---:|" + "---:|" * len(SPECIALTIES)]
    for label, r in results["losses"]["answer_loss"].items():
        lines.append(f"| {label} | {r['all']:.3f} | " +
                     " | ".join(f"{r[s]:.3f}" if s in r else "-" for s in SPECIALTIES) + " |")
    lines += ["", "## Tokens per second per node while training (median per update)", ""]
    for label, speeds in results["losses"]["tokens_per_s"].items():
        lines.append(f"- {label}: " + ", ".join(f"{s} {v:.0f}" for s, v in speeds.items()))
    lines += ["", "## Answers: base model vs routed experts (`fedmoe ask`, greedy)", ""]
    for a in results["losses"]["ask"]:
        # ~~~~ fences: an answer may hold its own ``` block
        lines += [f"**{a['question']}**", "", "base:", "", "~~~~", a["base"][:600].strip(),
                  "~~~~", "", f"routed ({a['adapter']}):", "", "~~~~",
                  a["routed"][:600].strip(), "~~~~", ""]
    return lines


def verdict(p: dict) -> list[str]:
    """Per domain: the expert against the base and the peer, and ``auto`` against the expert.

    Each task is worth 2 points of a domain's rate (48 SQL, 50 Python tasks): one task
    either way is within the noise of a single run.
    """
    out = []
    for s in ("sql_expert", "python_expert"):
        own, base, peer = p[s][s], p["base"][s], p["peer (global)"][s]
        auto = p["auto (ngrams)"][s]
        out.append(f"- {s}: expert {own:.1%} against base {base:.1%} "
                   f"({'above' if own > base else 'NOT above'}) and peer {peer:.1%} "
                   f"({'above' if own > peer else 'NOT above'}); auto {auto:.1%}, "
                   f"{(own - auto) * 100:+.1f} points from the expert "
                   f"({'within' if own - auto <= 0.05 else 'NOT within'} 5).")
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _matrix(by_run: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    out = []
    for label, rows in by_run.items():
        adapters = sorted({a for r in rows.values() for a in r})
        out += [f"{label}:", "", "| domain | " + " | ".join(adapters) + " |",
                "|---|" + "---:|" * len(adapters)]
        for domain, row in rows.items():
            best = min(row.values())
            out.append(f"| {domain} | " + " | ".join(
                (f"**{row[a]:.3f}**" if row.get(a) == best else f"{row[a]:.3f}")
                if a in row else "-" for a in adapters) + " |")
        out.append("")
    return out


def main() -> None:
    """The stages, then the report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", default="layers,train,score")
    ap.add_argument("--work", type=Path, default=ROOT / ".fedmoe" / "bench-real-model")
    ap.add_argument("--max-new-tokens", type=int, default=192)
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    if stages == {"report"}:  # the Markdown again from the committed JSON, nothing re-measured
        publish("real_model", table(json.loads(
            (ROOT / "bench" / "results" / "real_model.json").read_text())))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    state = args.work / "results.json"
    results = json.loads(state.read_text()) if state.exists() else {}
    layer = int(preset()["router.embedding-layer"])
    if "layers" in stages:
        layer = sweep_layers(results)
        results["chosen_layer"] = layer
        state.write_text(json.dumps(results, indent=1))
    layer = results.get("chosen_layer", layer)
    runs = train(args.work, layer) if "train" in stages else {
        n: args.work / n for n in ("experts", "peer")}
    if "score" in stages:
        key = f"{args.max_new_tokens}:" + ",".join(
            json.loads((runs[n] / "summary.json").read_text()).get("strategy", n)
            + f"@{(runs[n] / 'summary.json').stat().st_mtime:.0f}" for n in ("experts", "peer"))
        cache = results.get("pass_cache", {})
        done = cache.get("rates", {}) if cache.get("key") == key else {}

        def save(rates: dict) -> None:
            results["pass_cache"] = {"key": key, "rates": rates}
            state.write_text(json.dumps(results, indent=1))

        results["pass_rates"] = pass_rates(runs, args.max_new_tokens, done, save)
        results["losses"] = losses_and_routing(runs)
        state.write_text(json.dumps(results, indent=1))
        (ROOT / "bench" / "results" / "real_model.json").write_text(json.dumps(results, indent=1))
        publish("real_model", table(results))


if __name__ == "__main__":
    sys.exit(main())
