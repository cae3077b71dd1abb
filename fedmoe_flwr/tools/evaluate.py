"""``fedmoe evaluate``: pass rates of the base model, every expert, the gateway and the router.

Each adapter answers every task (greedy, batched); the code in each answer is
run in the sandbox of :mod:`fedmoe_flwr.execution` against the task's tests or
expected rows.  A loss says how close an answer is to a reference; a pass rate
says whether the code a user would paste works, which is what an expert is
for.

::

    fedmoe evaluate RUN data/eval/exec/*.jsonl          # base, experts, gateway, auto
    fedmoe evaluate data/eval/exec/*.jsonl --model smollm2-135m   # the base model alone

``auto`` is the run's router: each task is answered by the expert(s) its
prompt routes to, as ``fedmoe ask`` and ``serve`` would.  A ``flower-fedavg``
run's one adapter (``global``) is an expert of that run, so it is scored too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmoe_flwr.execution import Limits, Task, Verdict, check_answers, load_tasks, pass_rates
from fedmoe_flwr.execution.sandbox import DEFAULT_LIMITS
from fedmoe_flwr.tools.generation import generate_batch

BASE, AUTO, ARROW = "base", "auto", "arrow"


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated: length, batch, prompt length."""

    max_new_tokens: int = 256
    batch_size: int = 8


@dataclass
class Scorecard:
    """Every adapter's answers, verdicts and pass rates on one task set."""

    tasks: list[Task]
    answers: dict[str, list[str]] = field(default_factory=dict)
    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)
    routes: list[str] = field(default_factory=list)  # auto: the adapter each task went to

    def rates(self) -> dict[str, dict[str, float]]:
        """Adapter -> specialty (and ``all``) -> pass rate."""
        return {a: pass_rates(self.tasks, v) for a, v in self.verdicts.items()}

    def to_json(self) -> dict[str, Any]:
        """Pass rates, counts and every task's answer and verdict per adapter."""
        per_task = [{"source": t.source, "id": t.id, "specialty": t.specialty,
                     **({"auto": self.routes[i]} if self.routes else {}),
                     "answers": {a: {"passed": self.verdicts[a][i].passed,
                                     "reason": self.verdicts[a][i].reason,
                                     "answer": self.answers[a][i]} for a in self.verdicts}}
                    for i, t in enumerate(self.tasks)]
        counts: dict[str, int] = {}
        for t in self.tasks:
            counts[t.specialty] = counts.get(t.specialty, 0) + 1
        return {"pass_rates": self.rates(), "tasks": counts, "per_task": per_task}


def _judge(card: Scorecard, name: str, answers: list[str], limits: Limits) -> None:
    card.answers[name] = answers
    card.verdicts[name] = check_answers(list(zip(card.tasks, answers, strict=True)), limits)


def evaluate_base(model_name: str, tasks: list[Task], gen: GenerationSettings,
                  limits: Limits = DEFAULT_LIMITS) -> Scorecard:
    """The base model alone (``--model NAME`` without a run)."""
    from fedmoe_flwr.config import ModelConfig
    from fedmoe_flwr.node.model import load_base

    loaded = load_base(ModelConfig(name=model_name))
    card = Scorecard(tasks)
    with loaded.peft_model.disable_adapter():
        _judge(card, BASE, _generate(loaded, tasks, gen), limits)
    return card


def evaluate_run(run: Any, tasks: list[Task], gen: GenerationSettings,
                 limits: Limits = DEFAULT_LIMITS, only: Sequence[str] = ()) -> Scorecard:
    """The run's base model, every expert, the gateway and ``auto`` (or just ``only``)."""
    from fedmoe_flwr.config import ConfigError
    from fedmoe_flwr.tools.inference import Assistant, run_app_config

    experts = [n for n in run.names() if n != "gateway"]
    names = [BASE, *experts, *(["gateway"] if "gateway" in run.names() else []),
             AUTO, *([ARROW] if len(experts) > 1 else [])]
    unknown = sorted(set(only) - set(names))
    if unknown:  # before the model loads
        raise ConfigError(f"--adapters {unknown} are not in this run; it has {names}")
    assistant = Assistant(run, run_app_config(run))
    card = Scorecard(tasks)
    default = [n for n in names if n != ARROW]  # arrow on request: it costs a pass per token
    for name in [n for n in names if n in only] if only else default:
        _judge(card, name, answers_of(assistant, name, tasks, gen, card), limits)
    return card


def answers_of(assistant: Any, name: str, tasks: list[Task], gen: GenerationSettings,
               card: Scorecard | None = None) -> list[str]:
    """One adapter's answers (``base``, an expert, ``gateway`` or ``auto``) to ``tasks``."""
    if name == AUTO:
        return _routed(assistant, tasks, gen, card or Scorecard(tasks))
    if name == ARROW:
        from fedmoe_flwr.routing.router import Route

        assistant._use(Route(list(assistant.experts), {}, {}, "arrow"))
        return _generate(assistant.loaded, tasks, gen)
    with _adapter(assistant, name):
        return _generate(assistant.loaded, tasks, gen)


class _adapter:  # noqa: N801 - used as a context manager, reads like one
    """Make one adapter active (``base``: none) for the duration of a block."""

    def __init__(self, assistant: Any, name: str) -> None:
        self.assistant, self.name = assistant, name
        self._off: Any = None

    def __enter__(self) -> None:
        from fedmoe_flwr.routing.router import Route

        if self.name == BASE:
            self._off = self.assistant.model.disable_adapter()
            self._off.__enter__()
        elif self.name == "gateway":
            self.assistant._use(Route([], {}, {}, "explicit"))
        else:
            self.assistant.model.set_adapter(f"x:{self.name}")

    def __exit__(self, *exc: Any) -> None:
        if self._off is not None:
            self._off.__exit__(*exc)


def _generate(loaded: Any, tasks: Sequence[Task], gen: GenerationSettings) -> list[str]:
    return generate_batch(loaded, [t.prompt for t in tasks], max_new_tokens=gen.max_new_tokens,
                          batch_size=gen.batch_size)


def _routed(assistant: Any, tasks: list[Task], gen: GenerationSettings,
            card: Scorecard) -> list[str]:
    """Answers of whichever adapter the router picks per task, batched per pick."""
    routes = assistant.router.route_many([t.prompt for t in tasks])
    groups: dict[tuple, list[int]] = {}
    for i, route in enumerate(routes):
        key = tuple((n, round(route.weights[n], 2)) for n in route.experts)
        groups.setdefault(key, []).append(i)
    answers = [""] * len(tasks)
    card.routes = [""] * len(tasks)
    for indices in groups.values():
        used = assistant._use(routes[indices[0]])
        for i, text in zip(indices, _generate(assistant.loaded, [tasks[i] for i in indices],
                                              gen), strict=True):
            answers[i], card.routes[i] = text, used
    return answers


def table_rows(card: Scorecard) -> tuple[list[str], list[list[str]]]:
    """Column names and one row per adapter: pass rate per specialty, then all."""
    rates = card.rates()
    specialties = list(dict.fromkeys(t.specialty for t in card.tasks))
    columns = ["adapter", *specialties, "all"]
    rows = [[name, *[f"{r.get(s, 0.0):.1%}" for s in specialties], f"{r['all']:.1%}"]
            for name, r in rates.items()]
    return columns, rows


def write_json(card: Scorecard, path: Path) -> None:
    """The scorecard as JSON (atomically: a partial file is never left behind)."""
    from fedmoe_flwr.server.artifacts import atomic_write_text

    atomic_write_text(path, json.dumps(card.to_json(), indent=1))


def load_task_files(paths: Sequence[str | Path]) -> list[Task]:
    """The tasks of every file (a bad line is a one-line error naming file:line).

    Each prompt also passes the text check of ``ask`` and ``serve`` (no lone
    surrogate, not over the length limit), and files holding no task are an
    error: a pass rate over nothing would print as 0% and look like a result.
    """
    from fedmoe_flwr.execution.tasks import TaskError
    from fedmoe_flwr.tools.limits import SettingError, check_text

    tasks = load_tasks([Path(p) for p in paths])
    if not tasks:
        raise TaskError(f"no tasks in {', '.join(map(str, paths))} (the files are empty)")
    for task in tasks:
        try:
            check_text(task.prompt, "prompt")
        except SettingError as err:  # "prompt is empty" -> "file:line: key 'prompt' is empty"
            raise TaskError(f"{task.source}: key 'prompt' {str(err).removeprefix('prompt ')}") \
                from None
    return tasks
