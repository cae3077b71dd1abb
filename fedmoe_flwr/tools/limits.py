"""One set of rules for what a generation or routing request may ask, shared by every tool.

``fedmoe ask``, ``route-eval``, ``score``, ``evaluate`` and ``serve`` check a
question, the generation settings and router overrides with these functions,
so the command line and the HTTP server accept and refuse the same values
(a negative temperature is an error in both, never "greedy" in one).  Each
error is a :class:`SettingError` naming the setting; ``serve`` answers it as
an OpenAI 400 with that setting as ``param``.  The prompts of a file
(``route-eval``, ``score``, ``evaluate``) get the same text check with the
``file:line`` in front (:func:`check_text_at`); an output file and a listening
address are checked here too, before any work starts (:func:`check_out_file`,
:func:`check_listen`).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedmoe_flwr.config import ConfigError, RouterConfig

MAX_NEW_TOKENS = 1024
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**31 - 1
MAX_TEXT_CHARS = 100_000  # a question; longer ones are refused before tokenising


class SettingError(ConfigError):
    """A request setting out of range; ``setting`` names it (``temperature``, ``prompt``...)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def check_text(text: Any, setting: str = "prompt") -> str:
    """A non-empty question of real text (no lone surrogate), at most ``MAX_TEXT_CHARS``."""
    if not isinstance(text, str):
        raise SettingError(setting, f"{setting} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise SettingError(setting, f"{setting} is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise SettingError(setting, f"{setting} is {len(text):,} characters, over "
                                    f"{MAX_TEXT_CHARS:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise SettingError(setting, f"{setting} holds a lone surrogate at position "
                                    f"{err.start} (\\ud800-\\udfff), which is not text") from None
    return text


def check_text_at(text: Any, where: str, setting: str = "prompt") -> str:
    """:func:`check_text` for a line of a file: the error starts with ``where`` (``file:line``).

    ``route-eval``, ``score`` and ``evaluate`` read their prompts from files;
    naming the line is what lets a user fix the one bad prompt among thousands.
    """
    try:
        return check_text(text, setting)
    except SettingError as err:
        raise SettingError(setting, f"{where}: {err}") from None


def check_out_file(path: Any, flag: str = "--out") -> Path:
    """Refuse, before any work, an output file that could never be written.

    ``evaluate`` writes its ``--out`` after minutes of generation; a directory,
    a path under a file or an unwritable folder must fail first, in one line
    naming the flag (the folders that do not exist yet are created on write).
    """
    out = Path(path)
    if str(path) in ("", ".") or out.is_dir():
        raise SettingError(flag, f"{flag} {path} is a directory; give the path of a file")
    folder = out.parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent  # the deepest folder that exists: the new ones go in it
    if not folder.is_dir():
        raise SettingError(flag, f"{flag} {out}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingError(flag, f"{flag} {out}: cannot write in {folder} (permission denied)")
    return out


def _integer(value: Any, setting: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SettingError(setting, f"{setting} must be a whole number in [{lo}, {hi}], "
                                    f"got {value!r}")
    return value


def check_generation(max_new_tokens: Any, temperature: Any, seed: Any) -> tuple[int, float, int]:
    """``(max_new_tokens, temperature, seed)`` if each is in range (temperature 0 = greedy)."""
    n = _integer(max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
            not math.isfinite(temperature) or not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise SettingError("temperature", f"temperature must be a number in [0, "
                                          f"{MAX_TEMPERATURE}] (0 = greedy), got {temperature!r}")
    return n, float(temperature), _integer(seed, "seed", 0, MAX_SEED)


def check_router(base: RouterConfig, **overrides: Any) -> RouterConfig:
    """The run's router settings with overrides, each checked by the config's own rules."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    try:
        return replace(base, **changes) if changes else base
    except ConfigError as err:
        key = str(err).split("'")[1] if "'" in str(err) else "router"
        raise SettingError(key, str(err)) from None


def check_fits(prompt_tokens: int, max_new_tokens: int, context: int) -> None:
    """Refuse a prompt the model cannot read whole with room for the answer.

    A prompt is never cut: cutting its front drops the chat template's header
    and the question's start, and the router has scored the whole of it.
    """
    if prompt_tokens + max_new_tokens > context:
        raise SettingError("prompt", f"the prompt is {prompt_tokens:,} tokens; with "
                                     f"max_new_tokens {max_new_tokens} this model reads at "
                                     f"most {context:,} (shorten the prompt or the answer)")


def check_listen(host: str, port: int) -> None:
    """Refuse at start-up an address a server could never listen on (bound, then released).

    Without this, ``serve`` and ``console`` print their address, and only then
    does uvicorn fail to bind and exit 1 with its own message: a port in use or
    a host that is not this machine's must be one line naming the flag, exit 2.
    The socket is made as uvicorn makes its own (IPv6 when the host has a
    ``:``, ``SO_REUSEADDR``), so what passes here binds there.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise SettingError("--port", f"--port {port} is in use on {host} by another "
                                         f"process; stop it or choose another port") from None
        if err.errno == errno.EACCES:
            raise SettingError("--port", f"--port {port}: not allowed to listen on it "
                                         f"(ports under 1024 need root)") from None
        reason = err.strerror or str(err)
        raise SettingError("--host", f"--host {host!r} is not an address of this machine "
                                     f"({reason})") from None
    except (TypeError, ValueError, UnicodeError) as err:  # a NUL or an unencodable name
        raise SettingError("--host", f"--host {host!r} is not an address ({err})") from None
