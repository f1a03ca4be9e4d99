"""Exercise notebooks: semantic answer checks, solution → exercise generation, the check pipeline.

Notebooks import the checks from here::

    from hpcwidgets.exercises import check_command, check_script, check_bind, AnswerError

``build`` and ``runner`` (papermill, nbformat) are imported only by ``hpcwidgets workshop``.
"""

from __future__ import annotations

from .checks import (AnswerError, Matcher, absent, at_least, check_bind, check_command, check_model,
                     check_properties, check_script, check_tunnel, compare_models, contains, one_host, one_of,
                     passed, pinned)

__all__ = ["AnswerError", "Matcher", "absent", "at_least", "check_bind", "check_command", "check_model",
           "check_properties", "check_script", "check_tunnel", "compare_models", "contains", "one_host",
           "one_of", "passed", "pinned"]
