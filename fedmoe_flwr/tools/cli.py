"""The ``fedmoe`` command: inspect and export what a run trained.

::

    fedmoe run [--nodes N] [--run-config ...]  # a simulation, nothing left running after it
    fedmoe deploy certs|key|register|superlink|supernode|submit|status|stop-all ...
                                              # across machines: TLS, keys, pid files
    fedmoe experts [RUN_DIR]                  # specialty, version, losses, size
    fedmoe gateway [RUN_DIR]                  # how the gateway was merged, from what
    fedmoe export  [RUN_DIR] --adapter NAME --format peft|npz|merged --out PATH [--force]
    fedmoe ask     [RUN_DIR] "PROMPT" [--router ngrams|centroid|loss|keywords] [--seed N] ...
    fedmoe route-eval [RUN_DIR] FILE.jsonl ...   # accuracy + confusion matrix per router
    fedmoe score [RUN_DIR] FILE.jsonl ...        # loss of base, experts, gateway per file
    fedmoe evaluate [RUN_DIR] TASKS.jsonl ... [--model NAME]  # pass rates by running the code
    fedmoe serve   [RUN_DIR] [--port P] [--upstream URL]  # OpenAI-compatible API, batched
    fedmoe console [RUN_DIR] [--port P]          # a live web page of the run

``RUN_DIR`` defaults to ``outputs/latest`` and may belong to a run that is
still training: every command reads the last complete checkpoint.  Errors
print one line naming the path or adapter and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fedmoe_flwr.config import ROUTER_COMBINE, ConfigError
from fedmoe_flwr.execution.tasks import TaskError
from fedmoe_flwr.logs import setup_logging
from fedmoe_flwr.routing import router_names
from fedmoe_flwr.server.artifacts import STOP_FILE, pointer_file
from fedmoe_flwr.server.rundir import RunDirError, RunView
from fedmoe_flwr.tools.export import (
    FORMATS,
    MERGED_DTYPES,
    RUN_FORMATS,
    export_adapter,
    export_run,
)
from fedmoe_flwr.tools.limits import SettingError, check_listen, check_out_file, check_text
from fedmoe_flwr.tools.limits import check_generation as _check_generation

_FLAGS = {"max_new_tokens": "--max-new-tokens", "temperature": "--temperature", "seed": "--seed"}


def check_generation(max_new_tokens: object, temperature: object, seed: object) -> None:
    """The generation limits shared with ``serve``, the error naming the flag typed."""
    try:
        _check_generation(max_new_tokens, temperature, seed)
    except SettingError as err:
        flag = _FLAGS.get(err.setting, err.setting)
        raise ConfigError(str(err).replace(err.setting, flag, 1)) from None


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def _loss(x: object) -> str:
    return "-" if x is None else f"{float(x):.3f}"


def cmd_experts(run: RunView, console: Console) -> None:
    """Print one row per expert."""
    table = Table(title=f"experts in {run.root}")
    for col in ("specialty", "version", "updates", "nodes", "examples", "last train loss",
                "held-out loss", "adapter size"):
        table.add_column(col, justify="left" if col == "specialty" else "right")
    for e in run.experts():
        m = e.meta
        table.add_row(e.name, str(e.version), str(m.get("updates", 0)),
                      str(len(m.get("nodes", []))), str(m.get("examples_seen", 0)),
                      _loss(m.get("last_train_loss")),
                      _loss(m.get("eval_losses", {}).get(e.name)), _size(e.size_bytes))
    console.print(table)
    summary = run.summary()
    console.print("run finished" if summary else "run in progress (last checkpoints shown)")


def cmd_gateway(run: RunView, console: Console) -> None:
    """Print the gateway's method and the experts it is built from."""
    gw = run.adapter("gateway")
    m = gw.meta
    console.print(f"gateway in {run.root}\n  method {m.get('method')}, version {gw.version}, "
                  f"LoRA r={gw.config['r']} alpha={gw.config['lora_alpha']}, "
                  f"{_size(gw.size_bytes)}")
    table = Table(title="built from")
    for col in ("expert", "weight", "expert version", "gateway held-out loss on its domain"):
        table.add_column(col, justify="left" if col == "expert" else "right")
    coeffs = m.get("coefficients", {})
    for name in sorted(coeffs):
        table.add_row(name, f"{coeffs[name]:.3f}", str(m.get("expert_versions", {}).get(name)),
                      _loss(m.get("eval_losses", {}).get(name)))
    console.print(table)


def _split_run_dir(items: list[str], what: str) -> tuple[str | None, list[str]]:
    """``[RUN_DIR] ITEM...``: the first item is the run directory when it is a directory.

    A run directory written without symlinks is named by a pointer file
    (``outputs/latest`` is ``outputs/latest.ref``): that counts as a directory too.
    """
    if len(items) > 1 and (Path(items[0]).is_dir() or pointer_file(Path(items[0])).is_file()):
        return items[0], items[1:]
    if not items:
        raise RunDirError(f"missing {what}")
    return None, items


def _router_overrides(args: argparse.Namespace) -> dict:
    """RouterConfig fields set by the flags of :func:`_router_args` (None = the run's)."""
    return {"method": args.router, "top_k": args.top_k, "threshold": args.threshold,
            "temperature": args.router_temperature, "candidate_tokens": args.candidate_tokens}


_ROUTER_FLAGS = {"router.method": "--router", "router.top-k": "--top-k",
                 "router.threshold": "--threshold", "router.temperature": "--router-temperature",
                 "router.candidate-tokens": "--candidate-tokens", "router.combine": "--combine"}


def _app_config(run: RunView, args: argparse.Namespace, **extra: object) -> object:
    """The run's config with the router flags applied; a bad flag's error names the flag.

    The flags are checked by the config's own rules (:func:`limits.check_router`,
    as ``serve`` checks its settings), which name the run config key: the user
    typed ``--top-k``, so that is what the one line says.
    """
    from fedmoe_flwr.tools.inference import run_app_config

    try:
        return run_app_config(run, **_router_overrides(args), **extra)
    except SettingError as err:
        flag = _ROUTER_FLAGS.get(err.setting)
        if flag is None:
            raise
        raise ConfigError(str(err).replace(f"run config key '{err.setting}'", flag, 1)) \
            from None


def cmd_ask(args: argparse.Namespace, console: Console) -> None:
    """Route one prompt, generate, and show the experts used and their scores."""
    from fedmoe_flwr.tools.inference import Assistant

    run_dir, rest = _split_run_dir(args.items, "PROMPT")
    if len(rest) != 1:
        raise RunDirError("give one PROMPT (quote it)")
    check_text(rest[0])
    check_generation(args.max_new_tokens, args.temperature, args.seed)
    run = RunView(run_dir)
    cfg = _app_config(run, args, combine=args.combine)
    assistant = Assistant(run, cfg)
    answer = assistant.ask(rest[0], max_new_tokens=args.max_new_tokens,
                           temperature=args.temperature, seed=args.seed)
    r = answer.route
    console.print(f"router {r.method}: " + ", ".join(
        f"{n} {r.scores[n]:.3f}" for n in sorted(r.scores, key=lambda n: -r.scores[n])))
    console.print("experts used: " + (", ".join(f"{n} (weight {r.weights[n]:.2f})"
                                                for n in r.experts) or "none matched -> gateway")
                  + f"  (adapter: {answer.adapter})", markup=False, highlight=False)
    console.print("answer:", style="bold")
    console.print(answer.text, markup=False, highlight=False)


def cmd_route_eval(args: argparse.Namespace, console: Console) -> None:
    """Accuracy and confusion matrix of every router on labelled prompts."""
    from fedmoe_flwr.tools.inference import Assistant
    from fedmoe_flwr.tools.route_eval import NONE, evaluate_router, load_labelled

    run_dir, files = _split_run_dir(args.items, "FILE.jsonl")
    methods = [args.router] if args.router else [m for m in router_names() if m != "arrow"]
    if methods == ["arrow"]:
        raise ConfigError("the arrow router mixes the experts per token: it makes no "
                          "per-prompt choice to count; compare it by answers (fedmoe score, "
                          "fedmoe evaluate --adapters arrow)")
    run = RunView(run_dir)
    cfg = _app_config(run, args)
    examples = load_labelled([Path(f) for f in files], cfg,  # before the model loads
                             [n for n in run.names() if n != "gateway"])
    assistant = Assistant(run, cfg)
    summary = Table(title=f"routing accuracy (top-1) on {len(examples)} prompts")
    summary.add_column("router")
    specialties = sorted({s for _, s in examples})
    for s in specialties + ["all", "multi-expert"]:
        summary.add_column(s, justify="right")
    reports = []
    for method in methods:
        router = assistant.make_router(replace(cfg.router, method=method))
        report = evaluate_router(router, examples)
        reports.append(report)
        per = report.per_specialty()
        summary.add_row(method, *[f"{per.get(s, 0):.1%}" for s in specialties],
                        f"{report.accuracy:.1%}", str(report.multi))
    console.print(summary)
    for report in reports:
        preds = sorted({p for _, p in report.confusion} | set(specialties))
        table = Table(title=f"{report.method}: rows true specialty, columns routed to")
        table.add_column("true \\ routed")
        for p in preds:
            table.add_column(p if p != NONE else "none", justify="right")
        for t in specialties:
            table.add_row(t, *[str(report.confusion[t, p]) for p in preds])
        console.print(table)


def cmd_score(args: argparse.Namespace, console: Console) -> None:
    """Loss of the base model, every expert and the gateway on labelled JSONL files."""
    from fedmoe_flwr.tools.inference import run_app_config
    from fedmoe_flwr.tools.scoring import score_files

    run_dir, files = _split_run_dir(args.items, "FILE.jsonl")
    run = RunView(run_dir)
    scores = score_files(run, run_app_config(run), [Path(f) for f in files])
    names = list(next(iter(scores.values())))
    table = Table(title="loss on every example (answer tokens); lowest per file marked *")
    table.add_column("file")
    for name in names:
        table.add_column(name, justify="right")
    for path, row in scores.items():
        best = min(row, key=row.get)
        table.add_row(path, *[f"{row[n]:.3f}{'*' if n == best else ''}" for n in names])
    console.print(table)


def cmd_evaluate(args: argparse.Namespace, console: Console) -> None:
    """Execution pass rates of the base model, experts, gateway and router on task files."""
    from fedmoe_flwr.execution import Limits
    from fedmoe_flwr.tools import evaluate as ev

    check_generation(args.max_new_tokens, 0.0, 0)
    if args.out is not None:  # before minutes of generation, not after them
        check_out_file(args.out)
    if not 1 <= args.batch_size <= 512:
        raise ConfigError(f"--batch-size must be in [1, 512], got {args.batch_size}")
    if not 0 < args.timeout <= 600:
        raise ConfigError(f"--timeout must be in (0, 600] seconds, got {args.timeout}")
    gen, limits = ev.GenerationSettings(args.max_new_tokens, args.batch_size), \
        Limits(seconds=args.timeout)
    if args.model:
        tasks = ev.load_task_files(args.items)
        card = ev.evaluate_base(args.model, tasks, gen, limits)
        where = f"base model {args.model}"
    else:
        run_dir, files = _split_run_dir(args.items, "TASKS.jsonl")
        run = RunView(run_dir)
        tasks = ev.load_task_files(files)
        only = [a.strip() for a in args.adapters.split(",") if a.strip()]
        card = ev.evaluate_run(run, tasks, gen, limits, only)
        where = str(run.root)
    columns, rows = ev.table_rows(card)
    table = Table(title=f"execution pass rate on {len(tasks)} tasks ({where})")
    for col in columns:
        table.add_column(col, justify="left" if col == "adapter" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.out:
        try:
            ev.write_json(card, args.out)
        except OSError as err:  # checked at the start; the disk may have filled since
            raise ConfigError(f"--out {args.out}: cannot write it ({err.strerror})") from None
        console.print(f"answers and verdicts: {args.out}")


def cmd_stop(run: RunView, console: Console) -> None:
    """Ask the server loop to end the run: it stops dispatching, drains, evaluates, summarises."""
    if run.summary() is not None:
        raise RunDirError(f"{run.root} has finished already (summary.json exists)")
    (run.root / STOP_FILE).write_text("requested by fedmoe stop\n")
    console.print(f"asked {run.root} to stop; the server ends it within a few seconds, after "
                  f"merging the updates in flight (run.drain-timeout) and a final evaluation")


def _passthrough_parsers(sub: argparse._SubParsersAction) -> None:
    """``run``, ``deploy``, ``console`` in the help: main() hands their arguments on unparsed."""
    p = sub.add_parser("run", help="a Flower simulation of the app in the working directory "
                       "(own SuperLink, stopped at the end); args go to flwr run",
                       add_help=False)
    p.add_argument("flwr_args", nargs=argparse.REMAINDER,
                   help="[--nodes N] [--run-config FILE_OR_PAIRS]... [flwr run arguments]")
    p = sub.add_parser("deploy", help="deploy across machines: certs, key, register, "
                       "superlink, supernode, submit, status, stop-all", add_help=False)
    p.add_argument("deploy_args", nargs=argparse.REMAINDER,
                   help="SUBCOMMAND [arguments] (fedmoe deploy --help)")
    p = sub.add_parser("console", help="a live web page of a run: nodes, experts, gateway, "
                       "load, rejected updates (fedmoe console --help)", add_help=False)
    p.add_argument("console_args", nargs=argparse.REMAINDER,
                   help="[RUN_DIR] [--host H] [--port P] [--api-key KEY]")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand but ``run`` and ``deploy`` (their own)."""
    ap = argparse.ArgumentParser(prog="fedmoe", description="Inspect and export the experts "
                                 "and gateway of a FedMoE-Flower run.",
                                 epilog="Quiet by default: only this project's lines and real "
                                 "errors. FEDMOE_LOG_LEVEL=DEBUG (or --verbose before the "
                                 "command) shows every library's log, warning and progress bar, "
                                 "in every process the command starts.")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="every log line of every library (same as FEDMOE_LOG_LEVEL=DEBUG); "
                    "put it before the command")
    sub = ap.add_subparsers(dest="command", required=True)
    _passthrough_parsers(sub)
    for name, text in (("experts", "table of the experts"),
                       ("gateway", "how the gateway is built"),
                       ("stop", "end a running run gracefully (drain, final evaluation, "
                                "summary)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_dir", nargs="?", help="run directory (default: outputs/latest)")
    p = sub.add_parser("export", help="export an expert or the gateway")
    p.add_argument("run_dir", nargs="?", help="run directory (default: outputs/latest)")
    p.add_argument("--adapter", default=None, help="'gateway' or a specialty (vllm and gguf "
                   "export every adapter)")
    p.add_argument("--format", choices=FORMATS, default="peft")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--dtype", choices=MERGED_DTYPES, default="bfloat16",
                   help="weights of a merged export (16-bit for serving)")
    p = sub.add_parser("ask", help="route a prompt to expert(s) and generate")
    p.add_argument("items", nargs="+", metavar="[RUN_DIR] PROMPT")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--combine", choices=ROUTER_COMBINE, default=None,
                   help="several experts: mix (one merged adapter) or stitch (one answer each)")
    _router_args(p)
    _serve_args(sub.add_parser("serve", help="serve the experts: OpenAI-compatible API + "
                                              "expert API"))
    p = sub.add_parser("score", help="loss of base, experts and gateway on JSONL files")
    p.add_argument("items", nargs="+", metavar="[RUN_DIR] FILE.jsonl")
    p = sub.add_parser("evaluate", help="run the code each adapter writes: pass rates on "
                       "SQL / Python task files (docs/evaluation.md)")
    p.add_argument("items", nargs="+", metavar="[RUN_DIR] TASKS.jsonl")
    p.add_argument("--model", default=None,
                   help="score this base model alone (no run), e.g. smollm2-135m")
    p.add_argument("--adapters", default="",
                   help="comma-separated subset of base, the experts, gateway, auto")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8, help="prompts generated together")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per task's run")
    p.add_argument("--out", type=Path, default=None,
                   help="write every answer and verdict to this JSON file")
    p = sub.add_parser("route-eval", help="routing accuracy on labelled prompts")
    p.add_argument("items", nargs="+", metavar="[RUN_DIR] FILE.jsonl")
    _router_args(p, every=True)
    return ap


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", help="run directory (default: outputs/latest)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' (default: $FEDMOE_API_KEY)")
    p.add_argument("--max-batch", type=int, default=16,
                   help="requests generated together (1 = one at a time)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests that may wait; one more is answered 503")
    p.add_argument("--batch-window-ms", type=float, default=5.0,
                   help="a batch starts once no new request came for this long (at most "
                        "10 windows after its first request)")
    p.add_argument("--upstream", default=None, metavar="URL",
                   help="forward generation to this OpenAI-compatible server (vLLM, SGLang, "
                        "LoRAX, fedmoe serve) serving the run's adapters by name")
    p.add_argument("--upstream-key", default=None,
                   help="the upstream's bearer key (default: $FEDMOE_UPSTREAM_KEY)")
    p.add_argument("--upstream-timeout", type=float, default=120.0,
                   help="seconds the upstream may take to answer (then 504)")


def cmd_serve(args: argparse.Namespace) -> None:
    """Serve the run: generate here (batched), or route and forward to ``--upstream``."""
    from fedmoe_flwr.tools.proxy import check_upstream
    from fedmoe_flwr.tools.serve import check_batching, check_server_settings
    from fedmoe_flwr.tools.serve_http import serve, serve_proxy

    key = args.api_key if args.api_key is not None else os.environ.get("FEDMOE_API_KEY")
    check_server_settings(args.port, key)  # before the run is read or a model loaded
    check_listen(args.host, args.port)  # a port in use: one line now, not uvicorn's later
    if args.upstream is not None:
        up_key = args.upstream_key if args.upstream_key is not None else \
            os.environ.get("FEDMOE_UPSTREAM_KEY")
        base = check_upstream(args.upstream, up_key, args.upstream_timeout)
        serve_proxy(RunView(args.run_dir), args.host, args.port, key, base, up_key,
                    args.upstream_timeout)
        return
    check_batching(args.max_batch, args.max_queue, args.batch_window_ms)
    serve(RunView(args.run_dir), args.host, args.port, key, max_batch=args.max_batch,
          max_queue=args.max_queue, window_ms=args.batch_window_ms)


def _router_args(p: argparse.ArgumentParser, every: bool = False) -> None:
    p.add_argument("--router", choices=router_names(), default=None,
                   help="router method (default: " + ("every router" if every else
                                                     "router.method of the run") + ")")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--threshold", type=float, default=None,
                   help="minimum routing weight of an expert (default: the run's)")
    p.add_argument("--router-temperature", type=float, default=None,
                   help="softmax temperature of the routing scores (default: the run's)")
    p.add_argument("--candidate-tokens", type=int, default=None,
                   help="loss router: score N drafted answer tokens instead of the prompt "
                        "(default: the run's router.candidate-tokens)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line, allowing options between RUN_DIR and the prompts or files.

    ``fedmoe route-eval RUN --router loss a.jsonl`` is how people type it, but
    argparse stops filling a ``nargs="+"`` positional at the first option and
    rejects what follows; those leftover positionals belong to ``items``.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "items", None) is None or any(e.startswith("-") for e in extra):
            parser.error("unrecognized arguments: " + " ".join(extra))
        args.items.extend(extra)
    return args


def _passthrough(argv: list[str]) -> int | None:
    """Run ``console``, ``run`` or ``deploy`` (their own parsers); None for any other command."""
    if argv[:1] == ["console"]:  # reads only the run directory: no model, no torch import
        from fedmoe_flwr.tools.console import console_main

        return console_main(argv[1:])
    if argv[:1] == ["run"]:  # every other argument belongs to `flwr run`: no parsing here
        from fedmoe_flwr.tools.run import RUN_HELP, simulate

        if any(a in ("-h", "--help") for a in argv[1:]):
            print(RUN_HELP)  # and nothing started: a SuperLink only for a real run
            return 0
        try:
            return simulate(argv[1:])
        except (ConfigError, RuntimeError) as err:
            print(f"fedmoe: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # the SuperLink is stopped by simulate's own cleanup
            print("fedmoe run: interrupted; every process it started is stopped",
                  file=sys.stderr)
            return 130
    if argv[:1] == ["deploy"]:  # its own parser: every value checked before anything runs
        from fedmoe_flwr.tools.deploy import main as deploy

        return deploy(argv[1:])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedmoe`` console script (``fedmoe --verbose CMD``: every log line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = argv[:1] in (["--verbose"], ["-v"])  # before the command: after it, a
    argv = argv[1:] if verbose else argv  # command's own args (run's go to `flwr run`)
    # Before a library that reads its switches at import is imported; stderr keeps stdout
    # (answers, tables) clean for pipes.
    setup_logging(verbose, stream="stderr")
    code = _passthrough(argv)
    if code is not None:
        return code
    args = parse_args(argv)
    # Tables fit 120 columns; lines of text are never broken (a path or an adapter name cut
    # in two cannot be pasted or grepped): the terminal wraps them.
    console = Console(width=120, soft_wrap=True)
    try:
        if args.command == "experts":
            cmd_experts(RunView(args.run_dir), console)
        elif args.command == "gateway":
            cmd_gateway(RunView(args.run_dir), console)
        elif args.command == "export" and args.format in RUN_FORMATS:
            out = export_run(RunView(args.run_dir), args.format, args.out, force=args.force)
            console.print(f"exported every adapter for {args.format} to {out} (see "
                          f"{out / 'README.md'})")
        elif args.command == "export":
            if not args.adapter:
                raise RunDirError(f"--adapter is required for --format {args.format}")
            info = RunView(args.run_dir).adapter(args.adapter)
            out = export_adapter(info, args.format, args.out, force=args.force,
                                 dtype=args.dtype)
            rank = int(info.config.get("r", 0))
            console.print(f"exported {info.kind} {info.name!r} v{info.version} as "
                          f"{args.format} (LoRA rank {rank}) to {out}")
            if args.format == "peft" and rank > 16:
                flag = next((r for r in (32, 64, 128, 256, 512) if r >= rank), rank)
                console.print(f"  vLLM serves LoRA ranks up to 16 by default: start it with "
                              f"--max-lora-rank {flag}")
        elif args.command == "serve":
            cmd_serve(args)
        elif args.command == "stop":
            cmd_stop(RunView(args.run_dir), console)
        elif args.command == "ask":
            cmd_ask(args, console)
        elif args.command == "route-eval":
            cmd_route_eval(args, console)
        elif args.command == "score":
            cmd_score(args, console)
        elif args.command == "evaluate":
            cmd_evaluate(args, console)
    except _input_errors() as err:  # evaluated when raised: DataError's module is loaded
        print(f"fedmoe: error: {err}", file=sys.stderr)
        return 2
    return 0


def _input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input: printed as one line with exit status 2.

    A data file's :class:`~fedmoe_flwr.node.data.DataError` counts only once
    its module is loaded (importing it for the check would import ``datasets``
    into every command); it cannot have been raised before that.
    """
    data = sys.modules.get("fedmoe_flwr.node.data")
    return (RunDirError, ConfigError, TaskError, *([data.DataError] if data else []))


if __name__ == "__main__":
    raise SystemExit(main())
