"""A pytest plugin for the project's nbval runs (``pytest -p hpcwidgets.lessons.nbval_kernel --nbval …``).

nbval starts each notebook's kernel with jupyter_client's ``KernelManager``, whose client drops the messages ZeroMQ
could not hand over in time (see :mod:`hpcwidgets.lessons.kernel_client`): a lesson's large form could lose the
output after it, and nbval would report a difference the lesson does not have. Loaded before nbval starts a kernel,
this plugin has nbval make :class:`~hpcwidgets.lessons.kernel_client.WholeOutputBlockingManager` instead, whose clients
queue without limit.
"""

from __future__ import annotations

import nbval.kernel

from .kernel_client import WholeOutputBlockingManager

nbval.kernel.KernelManager = WholeOutputBlockingManager
