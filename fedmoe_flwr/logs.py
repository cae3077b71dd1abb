"""Log setup shared by both apps and the ``fedmoe`` command: this project's lines and real errors.

Quiet by default.  A federation multiplies every library's chatter by its
number of nodes, and the lines a person needs -- one per update, the load
line, the tables at the end -- drown in it.  So each known source of noise
is silenced where it starts:

- third-party *loggers* that warn about things no user can act on
  (bitsandbytes' optional ``kernels`` package, its int8 casts) are raised to
  ERROR, so their real errors still show;
- *warnings* are filtered by category and message (or module), never all of
  a category: an unexpected warning still shows;
- *progress bars* (transformers' "Loading weights", "Writing model shards",
  tqdm bars of GGUF conversion, datasets, the hub) are off: across nodes they
  interleave into garbage;
- *environment variables* that libraries read at import, or that Ray's driver
  reads when it starts, are set for this process and inherited by every
  process it starts (the SuperLink, the simulation, Ray's actors); ones the
  user set are kept.

``FEDMOE_LOG_LEVEL=DEBUG`` (or ``fedmoe --verbose CMD``, which calls
``setup_logging(verbose=True)``) shows everything: no filter, no level raised, bars on, and the
setting is passed on to child processes.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

LOGGERS = ("fedmoe", "fedmoe_flwr")  # the apps' logger and the library's module loggers
LEVEL_ENV = "FEDMOE_LOG_LEVEL"  # DEBUG | INFO | WARNING | ERROR for our loggers; DEBUG: all
NOISY_LOGGERS = ("bitsandbytes", "accelerate", "peft", "datasets", "huggingface_hub",
                 "transformers", "torch.distributed", "filelock")
QUIET_ENV = {
    "TOKENIZERS_PARALLELISM": "false",  # tokenizers' fork warning in every actor
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",  # before transformers is imported (a child process)
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TQDM_DISABLE": "1",  # bars made with plain tqdm (GGUF conversion): read at tqdm's import
    "RAY_DEDUP_LOGS": "0",  # every node's line in full, without Ray's dedup hint
}
# (category, message regex) of warnings that say nothing a user of this project can act on.
QUIET_WARNINGS = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),  # peft calls it
    (DeprecationWarning, r"`torch\.jit\.\w+` is (deprecated|not supported)"),  # bnb, peft
    (FutureWarning, r"`torch\.jit\.\w+` is (deprecated|not supported)"),
    (Warning, r".*Ray will no longer override"),
)


def log_level(verbose: bool = False) -> int:
    """Our loggers' level: DEBUG when verbose, else ``$FEDMOE_LOG_LEVEL`` (default INFO)."""
    if verbose:
        return logging.DEBUG
    name = os.environ.get(LEVEL_ENV, "INFO").strip().upper()
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.INFO


class _CurrentStream(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` (or ``sys.stderr``) is when a line is logged.

    ``fedmoe``'s ``main()`` sets logging up on every call; in a process that swaps
    the stream (a test's capture, a notebook) a handler bound to the first one
    would write to a closed one.
    """

    def __init__(self, name: str) -> None:
        super().__init__(getattr(sys, name))
        self.name_of_stream = name

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self.name_of_stream)
        super().emit(record)


def setup_logging(verbose: bool = False, stream: str = "stdout") -> None:
    """Configure this process's logging once: our lines on one stream, known noise silenced.

    The apps log to stdout (Flower shows a node's stdout as its log); the
    ``fedmoe`` command logs to stderr so that what it prints on stdout -- an
    answer, a table, a path -- can be piped or compared without timestamps.
    Safe to call more than once (handlers are added once; the stream follows
    the last call).  Call it before the heavy libraries are imported where
    possible: what they read at import (``QUIET_ENV``) only takes effect then,
    and always in child processes.
    """
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
    if verbose:
        os.environ[LEVEL_ENV] = "DEBUG"  # the SuperLink, the simulation and the actors too
    level = log_level(verbose)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = _CurrentStream(stream)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                                   datefmt="%H:%M:%S"))
            logger.addHandler(handler)
            logger.propagate = False
        for handler in logger.handlers:
            if isinstance(handler, _CurrentStream):
                handler.name_of_stream = stream
        logger.setLevel(level)
    if level > logging.DEBUG:
        quiet_third_party()


def quiet_third_party() -> None:
    """Silence the known noise of the libraries at its source (see the module docstring)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    warnings.filterwarnings("ignore", module="bitsandbytes")  # its own cast and dtype notes
    _progress_bars_off()


def _progress_bars_off() -> None:
    """The libraries' own switches, for those this process imported before ``QUIET_ENV`` was set.

    Ones not imported yet read ``QUIET_ENV`` when they are; nothing is imported
    here (the ServerApp never loads transformers or torch).
    """
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None:
        hub.disable_progress_bars()
    if "datasets" in sys.modules:
        datasets = sys.modules["datasets"]
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    if "transformers.utils.logging" in sys.modules:
        tf_logging = sys.modules["transformers.utils.logging"]
        tf_logging.disable_progress_bar()
        tf_logging.set_verbosity_error()
