"""Kernel managers whose runs keep every message a cell publishes, for the notebook runs the project makes.

A kernel publishes a cell's outputs and widget messages on a ZeroMQ PUB socket. ZeroMQ holds at most 1,000 messages
for each end of a connection (its default high-water mark), and PUB drops what comes beyond that while its reader
is behind, telling neither side. A form of a thousand widgets sends that many messages at once. On a busy 2-core
machine the run reading them fell behind, and the widget state it saved lacked a stretch of the form: CI's run of
lesson 08 kept 996 of its 1,163 widget models. One cell making 3,000 text boxes, run three times beside eight busy
processes on this 2-core machine, kept 0, 2,077 and 0 of them; in two of the three the cell's "done" message was
dropped too, so the run waited out its timeout.

Both ends lose their limit here. The clients' sockets queue what arrives however far behind the Python code reading
them is (the same cell kept 3,000 of 3,000 in each of three runs under the same load), and the kernel loads
:mod:`hpcwidgets.lessons.kernel_iopub`, which lifts the limit of its IOPub socket: a kernel whose own sending falls
behind (lesson 09 lost 126 of 1,163 models with only the clients' limit lifted) keeps the messages until they go.

Give :data:`MANAGER` as ``kernel_manager_class`` to nbclient's ``NotebookClient`` (papermill passes it on); nbval's
runs load :mod:`hpcwidgets.lessons.nbval_kernel`, which gives nbval :class:`WholeOutputBlockingManager`. Imports
jupyter_client and pyzmq, so only the notebook runs import this module.
"""

from __future__ import annotations

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import AsyncKernelManager, KernelManager
from traitlets import DottedObjectName, Type

from .kernel import IOPUB_TIMEOUT


def _unlimited(context: zmq.Context) -> zmq.Context:
    context.setsockopt(zmq.RCVHWM, 0)    # no limit, for each socket made from it, set before it connects
    return context


class WholeOutputClient(AsyncKernelClient):
    """nbclient's kernel client, with sockets that queue without limit what they receive (see the module's doc)."""

    def _context_default(self) -> zmq.asyncio.Context:
        return _unlimited(super()._context_default())    # the client's own context: it destroys it when done


def _kernel_cmd(cmd: list[str]) -> list[str]:
    """An ipykernel command line with :mod:`hpcwidgets.lessons.kernel_iopub` loaded (the kernel's end)."""
    from .kernel_iopub import ARGUMENT
    return [*cmd, ARGUMENT] if any("ipykernel" in part for part in cmd) else cmd


class WholeOutputManager(AsyncKernelManager):
    """nbclient's kernel manager: a kernel whose IOPub socket queues without limit, and
    :class:`WholeOutputClient` clients."""

    client_class = DottedObjectName(f"{__name__}.WholeOutputClient")
    client_factory = Type(WholeOutputClient, klass=AsyncKernelClient)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return _kernel_cmd(super().format_kernel_cmd(extra_arguments))


class WholeOutputBlockingClient(BlockingKernelClient):
    """nbval's kernel client (a blocking one), with the same unlimited sockets."""

    def _context_default(self) -> zmq.Context:
        return _unlimited(super()._context_default())


class WholeOutputBlockingManager(KernelManager):
    """nbval's kernel manager: the same kernel, and :class:`WholeOutputBlockingClient` clients."""

    client_class = DottedObjectName(f"{__name__}.WholeOutputBlockingClient")
    client_factory = Type(WholeOutputBlockingClient, klass=BlockingKernelClient)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return _kernel_cmd(super().format_kernel_cmd(extra_arguments))


#: the kernel manager class the notebook runs use
MANAGER = WholeOutputManager

#: the options every notebook run gives nbclient (papermill passes them on): this kernel manager, and a wait of
#: :data:`~hpcwidgets.lessons.kernel.IOPUB_TIMEOUT` for a cell's last messages whose end is an error
RUN_OPTIONS = {"kernel_manager_class": MANAGER, "iopub_timeout": IOPUB_TIMEOUT, "raise_on_iopub_timeout": True}

__all__ = ["MANAGER", "RUN_OPTIONS", "WholeOutputBlockingClient", "WholeOutputBlockingManager", "WholeOutputClient",
           "WholeOutputManager"]
