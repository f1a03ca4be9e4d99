"""A kernel manager whose clients receive every message a cell publishes, for the notebook runs the project makes.

A kernel publishes a cell's outputs and widget messages on a ZeroMQ PUB socket, and PUB drops the messages a
subscriber has not taken in once 1,000 wait for it (ZeroMQ's default high-water mark), telling neither side. A form of
a thousand widgets sends that many messages at once. On a busy 2-core machine the run reading them fell behind, and
the widget state it saved lacked whole parts of the form: CI's run of lesson 08 kept 996 of its 1,163 widget models.
One cell making 3,000 text boxes, run three times beside eight busy processes on this 2-core machine, kept 0, 2,077
and 0 of them; in two of the three the cell's "done" message was dropped too, so the run waited out its timeout.

The clients made here lift the limit on their own socket. ZeroMQ's I/O thread then takes in each message as it
arrives, however far behind the Python code reading them is, so the kernel's queue never fills: the same cell kept
3,000 of 3,000 in each of three runs under the same load.

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


def _unlimited(context: zmq.Context) -> zmq.Context:
    context.setsockopt(zmq.RCVHWM, 0)    # no limit, for each socket made from it, set before it connects
    return context


class WholeOutputClient(AsyncKernelClient):
    """nbclient's kernel client, with sockets that queue without limit what they receive (see the module's doc)."""

    def _context_default(self) -> zmq.asyncio.Context:
        return _unlimited(super()._context_default())    # the client's own context: it destroys it when done


class WholeOutputManager(AsyncKernelManager):
    """nbclient's kernel manager, making :class:`WholeOutputClient` clients."""

    client_class = DottedObjectName(f"{__name__}.WholeOutputClient")
    client_factory = Type(WholeOutputClient, klass=AsyncKernelClient)


class WholeOutputBlockingClient(BlockingKernelClient):
    """nbval's kernel client (a blocking one), with the same unlimited sockets."""

    def _context_default(self) -> zmq.Context:
        return _unlimited(super()._context_default())


class WholeOutputBlockingManager(KernelManager):
    """nbval's kernel manager, making :class:`WholeOutputBlockingClient` clients."""

    client_class = DottedObjectName(f"{__name__}.WholeOutputBlockingClient")
    client_factory = Type(WholeOutputBlockingClient, klass=BlockingKernelClient)


#: the kernel manager class the notebook runs use
MANAGER = WholeOutputManager

__all__ = ["MANAGER", "WholeOutputBlockingClient", "WholeOutputBlockingManager", "WholeOutputClient",
           "WholeOutputManager"]
