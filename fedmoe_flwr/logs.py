"""Log setup shared by both apps: one readable line per event, no progress bars.

Progress bars from ``datasets`` and ``transformers`` are turned off because in
a federation they interleave across nodes into noise; the per-update lines of
the server are the live view.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

LOGGERS = ("fedmoe", "fedmoe_flwr")  # the apps' logger and the library's module loggers


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the ``fedmoe`` loggers once per process."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                                   datefmt="%H:%M:%S"))
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - datasets is a hard dependency
        pass
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    warnings.filterwarnings("ignore", module="bitsandbytes")
    warnings.filterwarnings("ignore", message=".*Ray will no longer override.*")
