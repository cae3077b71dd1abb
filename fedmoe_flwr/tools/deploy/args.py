"""The arguments of every ``fedmoe deploy`` subcommand, declared once, each with its check.

A :class:`Spec` lists a subcommand's positionals and options and the
:mod:`~fedmoe_flwr.tools.deploy.validate` function that checks each value;
:func:`parse` applies them all before a command runs, so a command receives
only checked values and an unknown option, a missing value or a bad one stops
the command line before anything is written or started.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fedmoe_flwr.tools.deploy import validate as v
from fedmoe_flwr.tools.deploy.validate import DeployError


@dataclass(frozen=True)
class Arg:
    """One positional (``NAME``) or option (``--speed``) and how its value is checked."""

    name: str
    check: Callable[[str], Any] | None = None  # None: a switch that takes no value
    required: str = ""  # the error when it is missing ("" = optional)

    @property
    def dest(self) -> str:
        """The key of the parsed value (``--model-source`` -> ``model_source``)."""
        return self.name.lstrip("-").replace("-", "_").lower()


@dataclass(frozen=True)
class Spec:
    """A subcommand's command line: positionals, options, and what is passed on unparsed."""

    usage: str
    positionals: tuple[Arg, ...] = ()
    options: tuple[Arg, ...] = ()
    variadic: Arg | None = None  # the last positional, repeated (certs HOST...)
    passthrough: bool = False  # every argument goes to another program unchanged (submit)


_NODE = "supernode start NAME --superlink HOST:PORT --specialty S --data FILE [--speed F] " \
    "[--gpus N|all] [--model-source S] [--port P] [--ca FILE] [--insecure] [--cold]"
SPECS: dict[str, Spec] = {
    "certs": Spec("certs HOST_OR_IP [HOST_OR_IP ...] [--force] (names SuperNodes use to "
                  "reach the SuperLink)",
                  variadic=Arg("HOST_OR_IP", lambda s: v.host(s, "HOST_OR_IP"),
                               "give at least one HOST_OR_IP"),
                  options=(Arg("--force"),)),
    "key": Spec("key NAME", (Arg("NAME", lambda s: v.name(s, "NAME"), "NAME is required"),)),
    "register": Spec("register KEY.pub", (Arg("KEY.pub", lambda s: v.path(s, "KEY.pub"),
                                              "KEY.pub is required"),)),
    "superlink start": Spec("superlink start [--insecure] [--host ADDR]",
                            options=(Arg("--insecure"), Arg("--host", v.host))),
    "superlink stop": Spec("superlink stop"),
    "superlink status": Spec("superlink status"),
    "supernode start": Spec(_NODE, (Arg("NAME", lambda s: v.name(s, "NAME"),
                                        f"NAME is required: {_NODE}"),), (
        Arg("--superlink", lambda s: v.address(s, "--superlink")),
        Arg("--specialty", lambda s: v.name(s, "--specialty"),
            "--specialty is required (e.g. sql_expert)"),
        Arg("--data", v.data_file, "--data is required (the node's JSONL file)"),
        Arg("--speed", v.speed), Arg("--gpus", v.gpus), Arg("--model-source", v.model_source),
        Arg("--port", lambda s: v.port(s, "--port")), Arg("--ca", lambda s: v.path(s, "--ca")),
        Arg("--insecure"), Arg("--cold"))),
    "supernode stop": Spec("supernode stop NAME | --all",
                           (Arg("NAME", lambda s: v.name(s, "NAME")),), (Arg("--all"),)),
    "supernode status": Spec("supernode status"),
    "submit": Spec("submit [flwr run arguments]", passthrough=True),
    "status": Spec("status"),
    "stop-all": Spec("stop-all"),
}


def _option(spec: Spec, token: str) -> Arg:
    for opt in spec.options:
        if opt.name == token:
            return opt
    raise DeployError(f"unknown option {token} ({spec.usage})")


def parse(spec: Spec, argv: Sequence[str]) -> dict[str, Any]:
    """Check a subcommand's arguments against its spec.

    Returns
    -------
    dict
        Every declared argument's checked value by :attr:`Arg.dest` (None, or
        False for a switch, when not given); ``args`` holds the arguments of a
        passthrough spec, ``hosts`` the values of a variadic one.
    """
    if spec.passthrough:
        return {"args": list(argv)}
    out: dict[str, Any] = {a.dest: (None if a.check else False) for a in spec.options}
    out.update({a.dest: None for a in spec.positionals})
    free = list(spec.positionals)
    repeated: list[Any] = []
    tokens = iter(argv)
    for token in tokens:
        if token.startswith("-") and token != "-":
            opt = _option(spec, token)
            if opt.check is None:
                out[opt.dest] = True
                continue
            value = next(tokens, None)
            if value is None:
                raise DeployError(f"{opt.name} needs a value ({spec.usage})")
            out[opt.dest] = opt.check(value)
        elif free:
            arg = free.pop(0)
            out[arg.dest] = arg.check(token) if arg.check else token
        elif spec.variadic is not None and spec.variadic.check is not None:
            repeated.append(spec.variadic.check(token))
        else:
            raise DeployError(f"unexpected argument {token!r} ({spec.usage})")
    _required(spec, out, repeated)
    if spec.variadic is not None:
        out["hosts"] = repeated
    return out


def _required(spec: Spec, out: dict[str, Any], repeated: list[Any]) -> None:
    """Refuse a command line that lacks a required argument."""
    for arg in (*spec.positionals, *spec.options):
        if arg.required and out.get(arg.dest) is None:
            raise DeployError(arg.required)
    if spec.variadic is not None and spec.variadic.required and not repeated:
        raise DeployError(f"{spec.variadic.required}: {spec.usage}")
