"""An IPython extension for the kernels of the project's notebook runs: the kernel's IOPub socket queues without limit.

The other end of :mod:`hpcwidgets.lessons.kernel_client`. ZeroMQ holds at most 1,000 of the messages a socket has not
yet handed to the network (its default high-water mark), and a PUB socket drops what comes beyond that. A cell that
makes a form of a thousand widgets queues that many in a moment; when the kernel's ZeroMQ thread is slow to send them
(a busy 2-core machine), the messages from the middle of the burst were lost, and the re-run of lesson 09 saved 1,037
of its 1,163 widget models although its reader's socket already had no limit. With this extension loaded the kernel
keeps them until they are sent.

Loaded by the kernel managers of :mod:`hpcwidgets.lessons.kernel_client` (``--IPKernelApp.extra_extensions=…`` on
the kernel's command line); it does nothing in a kernel that is not ipykernel's.
"""

from __future__ import annotations

from typing import Any

#: the kernel command-line argument that loads this extension
ARGUMENT = f"--IPKernelApp.extra_extensions={__name__}"


def load_ipython_extension(ipython: Any) -> None:
    """Lift the high-water mark of the kernel's IOPub socket, from the thread that owns the socket."""
    import zmq
    from ipykernel.kernelapp import IPKernelApp
    if not IPKernelApp.initialized():
        return
    thread = getattr(IPKernelApp.instance(), "iopub_thread", None)
    socket = getattr(thread, "socket", None)
    if socket is None:
        return
    # ZeroMQ sockets belong to one thread: the IOPub thread sets the option between two sends
    thread.schedule(lambda: socket.setsockopt(zmq.SNDHWM, 0))
