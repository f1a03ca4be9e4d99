"""Let a module be called like the function it is named after.

``hpcwidgets.render``, ``hpcwidgets.lint`` and ``hpcwidgets.examples`` are both public functions and
packages or modules of the same name. Python sets ``hpcwidgets.render`` to the *module* as soon as
any submodule such as ``hpcwidgets.render.command`` is imported, so the function would vanish from
the package namespace. Making those modules callable keeps ``hpcwidgets.render(model)`` working
whatever was imported before.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def make_callable(module_name: str, function_name: str) -> None:
    module = sys.modules[module_name]

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(self, function_name)(*args, **kwargs)

    CallableModule.__name__ = f"CallableModule[{function_name}]"
    module.__class__ = CallableModule
