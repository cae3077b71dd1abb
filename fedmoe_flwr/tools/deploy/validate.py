"""Every value a ``fedmoe deploy`` command line or environment brings, checked once.

Each check takes the text as typed and returns the value to use, or raises
:class:`DeployError` with one line naming the option and the value.  The
commands only ever see checked values, so nothing unchecked reaches the crypto
code, Flower's ``--node-config`` string, a subprocess or a file path.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path

from fedmoe_flwr.config import MODEL_SOURCES, ConfigError, check_name

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")  # RFC 1123 label
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # what --speed may be: no sign, exponent, nan
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DeployError(Exception):
    """A bad argument or state: printed as one ``deploy: error:`` line, exit status 2."""


def name(value: str, what: str) -> str:
    """A node, key or specialty name: the project's one set of name rules.

    Parameters
    ----------
    value : str
        The name as typed.
    what : str
        How the error names it (``NAME``, ``--specialty``).

    Returns
    -------
    str
        ``value``, which is safe as a file name and inside ``--node-config``.
    """
    try:
        return check_name(value, what)
    except ConfigError as err:
        raise DeployError(str(err)) from None


def host(value: str, what: str = "host") -> str:
    """An IP address (``ipaddress``) or a DNS name made of RFC 1123 labels.

    Text that looks like an IPv4 address (digits and dots) or contains ``:``
    must parse as an IP address, so ``10.0.0.256`` is an error instead of a
    DNS name that no certificate check would ever match.

    Returns
    -------
    str
        The address in canonical form, or the DNS name in lower case.
    """
    if not value or _CONTROL.search(value) or value != value.strip():
        raise DeployError(f"{what} must be a DNS name or an IP address, got {value!r}")
    if ":" in value or re.fullmatch(r"[0-9.]+", value):
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise DeployError(f"{what}: {value!r} is not a valid IP address") from None
        if getattr(ip, "scope_id", None):  # a certificate's IP entry has no place for it
            raise DeployError(f"{what}: {value!r} is a scoped IPv6 address (%{ip.scope_id}); "
                              f"a certificate or a peer cannot use the scope: give a global "
                              f"address or a DNS name")
        return str(ip)
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in labels) \
            or labels[-1].isdigit():
        raise DeployError(f"{what} must be a DNS name (letters, digits and '-' in labels "
                          f"of 1-63 characters, separated by '.') or an IP address, got "
                          f"{value!r}")
    return value.lower()


def is_ip(value: str) -> bool:
    """Whether a checked host is an IP address (else a DNS name)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def url_host(value: str) -> str:
    """A checked host as it appears in a URL or ``HOST:PORT`` (IPv6 in brackets)."""
    return f"[{value}]" if ":" in value else value


def port(value: str, what: str = "port") -> int:
    """A TCP port: a whole number in [1, 65535]."""
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 65535:
        raise DeployError(f"{what} must be a whole number in [1, 65535], got {value!r}")
    return int(value)


def address(value: str, what: str = "--superlink") -> str:
    """``HOST:PORT`` (``[IPV6]:PORT``) with a checked host and port."""
    match = re.fullmatch(r"\[([^\]]*)\]:([^:]*)|([^:\[\]]*):([^:]*)", value)
    if match is None:
        raise DeployError(f"{what} must be HOST:PORT (or [IPV6]:PORT), got {value!r}")
    raw_host = match.group(1) if match.group(1) is not None else match.group(3)
    raw_port = match.group(2) if match.group(2) is not None else match.group(4)
    if match.group(1) is not None and not is_ip(raw_host):
        raise DeployError(f"{what}: {raw_host!r} in brackets is not an IPv6 address")
    checked = host(raw_host, what)
    return f"{url_host(checked)}:{port(raw_port, what + ' port')}"


def speed(value: str) -> str:
    """The node's simulated slowness: a plain decimal number >= 1, kept as typed."""
    if not _NUMBER.fullmatch(value) or not math.isfinite(float(value)) or float(value) < 1:
        raise DeployError(f"--speed must be a number >= 1, got {value!r}")
    return value


def gpus(value: str) -> str:
    """Devices one node trains each update on (DDP): a whole number 1-64, or ``all``."""
    if value == "all" or (value.isdigit() and 1 <= int(value) <= 64):
        return value
    raise DeployError(f"--gpus must be a whole number from 1 to 64, or 'all', got {value!r}")


def model_source(value: str) -> str:
    """Where a node loads the base model from: one of ``config.MODEL_SOURCES``."""
    if value not in MODEL_SOURCES:
        raise DeployError(f"--model-source must be one of {', '.join(MODEL_SOURCES)}, got "
                          f"{value!r}")
    return value


def path(value: str, what: str) -> Path:
    """A file or directory path: not empty, no control characters (newline, NUL)."""
    if not value or _CONTROL.search(value):
        raise DeployError(f"{what} must be a path without control characters, got {value!r}")
    return Path(value).expanduser()


def data_file(value: str) -> str:
    """The node's JSONL file: an existing file, as an absolute path safe in ``--node-config``.

    The path goes inside single quotes of Flower's ``--node-config`` string (a
    TOML literal string), so a quote would end it and inject keys; Windows
    separators become ``/``, which Python opens all the same.
    """
    p = path(value, "--data")
    if any(c in value for c in "'\"") or (os.name != "nt" and "\\" in value):
        raise DeployError(f"--data path must not contain quotes or backslashes: {value}")
    if not p.is_file():
        raise DeployError(f"data file {value} does not exist")
    resolved = p.resolve()
    text = resolved.as_posix() if os.name == "nt" else str(resolved)
    if any(c in text for c in "'\"\\") or _CONTROL.search(text):  # a link's target
        raise DeployError(f"--data path must not contain quotes or backslashes: {text}")
    return text


def flag(value: str, what: str) -> bool:
    """An environment switch such as ``FORCE``: ``1`` is on, empty or ``0`` off."""
    if value not in ("", "0", "1"):
        raise DeployError(f"{what} must be 0 or 1, got {value!r}")
    return value == "1"
