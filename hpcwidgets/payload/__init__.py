"""Training scripts shipped with the package, for lessons, examples and integration tests.

The scripts here are *payload*: programs that jobs run, not modules this package imports. Each one
is a standalone file that needs only PyTorch, NumPy and scikit-learn (never ``hpcwidgets``), so it
can be copied into a container image or bound into one and run with a plain ``python`` or under
``torchrun``:

``train.py``
    Single-process training of a small MLP on scikit-learn's bundled handwritten digits
    (no download needed). Deterministic for a given ``--seed``; logs one line per epoch and writes
    ``metrics.json`` into ``--output-dir``.

``ddp_train.py``
    The same model trained with ``DistributedDataParallel``. Works under ``torchrun`` (gloo on CPU,
    NCCL on GPUs) and also without it (one process). Checkpoints every epoch to
    ``--checkpoint-dir`` and resumes from the newest checkpoint when restarted.

Use :func:`path` to find the installed copy of a script, e.g. to bind it into a container::

    from hpcwidgets import payload
    script = payload.path("ddp_train.py")
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HpcWidgetsError

#: The scripts this package ships, in the order lessons introduce them.
SCRIPTS: tuple[str, ...] = ("train.py", "ddp_train.py")


class UnknownPayloadError(HpcWidgetsError, LookupError):
    """A payload script name that the package does not ship; the message lists the valid ones."""


def path(name: str) -> Path:
    """Return the absolute path of the installed payload script ``name`` (e.g. ``"train.py"``).

    Raises :class:`UnknownPayloadError` when ``name`` is not one of :data:`SCRIPTS`.
    """
    if name not in SCRIPTS:
        raise UnknownPayloadError(
            f"no payload script named {name!r}; use one of: {', '.join(SCRIPTS)}")
    return Path(__file__).resolve().with_name(name)


__all__ = ["SCRIPTS", "UnknownPayloadError", "path"]
