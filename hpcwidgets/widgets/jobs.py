"""The Submit button's job panel: state, elapsed time, the output's tail and Cancel.

Polling runs in a background thread so the kernel stays free for other cells; ipywidgets sends
the trait changes from that thread. Polling stops at a final state (or when the panel is closed).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import ipywidgets as w

from ..errors import RunError
from .highlight import escape

TAIL_LINES = 20


def _final_states() -> frozenset[str]:
    from ..run.slurm import FINAL_STATES
    return frozenset(FINAL_STATES)


class JobPanel(w.VBox):
    """Follows one submitted job. ``follow(job)`` starts polling; ``stop()`` ends it."""

    def __init__(self, poll_seconds: float = 2.0, **kw: Any):
        self.poll_seconds = poll_seconds
        self.job: Any = None
        self.state = ""
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self.summary = w.HTML("", layout=w.Layout(margin="0 0 4px 0"))
        self.output_view = w.HTML("", layout=w.Layout(width="100%"))
        self.cancel_button = w.Button(description="Cancel job", icon="stop", disabled=True,
                                      tooltip="Ask Slurm to cancel the job (scancel)")
        self.cancel_button.on_click(lambda _b: self.cancel())
        super().__init__([self.summary, self.output_view, self.cancel_button], **kw)
        self.add_class("hpcw-job")
        self.layout.display = "none"

    # -- polling ---------------------------------------------------------------------------------
    def follow(self, job: Any) -> None:
        self.stop()
        self.job = job
        self.state = ""
        self.polls = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self.layout.display = ""
        self.cancel_button.disabled = False
        self.cancel_button.layout.display = ""
        self._show(f"job {escape(job.id)} submitted", "")
        self._thread = threading.Thread(target=self._loop, name=f"hpcw-job-{job.id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=max(self.poll_seconds * 2, 1.0))
        self._thread = None

    @property
    def polling(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        final = _final_states()
        while not self._stop.is_set():
            if self.poll_once() in final:
                return
            self._stop.wait(self.poll_seconds)

    def poll_once(self) -> str:
        """Ask Slurm once and update the panel; returns the state ("" when Slurm could not say)."""
        job = self.job
        self.polls += 1
        try:
            state = job.state()
        except RunError as exc:
            self._show(f"job {escape(job.id)}: state unknown", f"<span class='hpcw-status-error'>{escape(exc)}</span>")
            return ""
        elapsed = ""
        try:
            elapsed = job.info().elapsed
        except RunError:
            elapsed = _clock(time.monotonic() - self._started)
        try:
            tail = job.output(tail=TAIL_LINES)
        except RunError as exc:
            tail = f"(no output yet: {exc})"
        self._show(f"job {escape(job.id)}: <b>{escape(state)}</b>, elapsed {escape(elapsed or '0:00')}",
                   f"<pre tabindex='0' role='region' aria-label='job output' data-lm-suppress-shortcuts='true'>"
                   f"{escape(tail)}</pre>")
        if state in _final_states():  # nothing left to cancel: the button goes (disabled first, for a click on its way)
            self.cancel_button.disabled = True
            self.cancel_button.layout.display = "none"
        # published last: whoever sees a final state also sees that poll's output and a disabled, hidden Cancel
        self.state = state
        return state

    def cancel(self) -> None:
        if self.job is None:
            return
        try:
            self.job.cancel()
        except RunError as exc:
            self._show(f"job {escape(self.job.id)}: could not cancel",
                       f"<span class='hpcw-status-error'>{escape(exc)}</span>")
            return
        self.cancel_button.disabled = True

    def _show(self, summary: str, body: str) -> None:
        self.summary.value = f"<div class='hpcw-status' role='status'>{summary}</div>"
        if body:
            self.output_view.value = body

    def close(self) -> None:
        self.stop()
        super().close()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def submitter() -> Callable[[str], Any]:
    from ..run.slurm import submit
    return submit
