"""The kernel every notebook run starts: its name, how long and how often a start is tried, and which failures are
the machine's rather than the notebook's.

Shared by the lessons' re-execution (:mod:`hpcwidgets.lessons.refresh`) and the workshop check
(:mod:`hpcwidgets.exercises.runner`), which imports it from here: the exercises import the lessons, never the other
way round. Stdlib only.
"""

from __future__ import annotations

#: the kernel the notebooks are run with
KERNEL = "python3"
#: seconds a kernel may take to answer its first request
START_TIMEOUT = 90
#: how many times a run whose kernel died starting is tried in all
START_ATTEMPTS = 3
#: seconds a run waits, after a cell's reply, for the cell's last outputs and widget messages. nbclient's default is
#: 4 s, after which it goes on without them and only logs a warning; on a busy machine a cell that makes a large form
#: takes longer than that to arrive. The wait ends as soon as the kernel says the cell is done, so a long limit costs
#: nothing, and the runs pass ``raise_on_iopub_timeout=True``: a message that never comes is an error, not a quietly
#: shorter notebook. (Messages that ZeroMQ dropped never come: see :mod:`hpcwidgets.lessons.kernel_client`.)
IOPUB_TIMEOUT = 120

# What jupyter_client says when a kernel never answered its first request. That is the machine, not the
# notebook: jupyter_client picks free TCP ports, closes them and writes them to the connection file, and a
# kernel starting at the same moment elsewhere (another run of the pool, another test) can take one of them
# first, so the new kernel dies on "Address already in use" before it runs a cell. Such a run is repeated.
KERNEL_START_FAILURES = ("Kernel died before replying to kernel_info", "Kernel didn't respond in",
                         "Kernel didn't respond to heartbeats")


def kernel_start_failed(detail: str) -> bool:
    """True when a run's failure text says its kernel never started (worth one more try), not that a cell failed."""
    return any(sign in detail for sign in KERNEL_START_FAILURES)


__all__ = ["IOPUB_TIMEOUT", "KERNEL", "KERNEL_START_FAILURES", "START_ATTEMPTS", "START_TIMEOUT", "kernel_start_failed"]
