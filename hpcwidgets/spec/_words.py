"""Value types shared by every model."""

from __future__ import annotations


class Verbatim(str):
    """Shell text kept exactly as it was written in an existing script.

    Values a person types in a form or on the CLI are plain ``str`` and are always quoted by the
    contract in :mod:`hpcwidgets.render.quote`. The parser wraps words it cannot represent as plain
    values (``$(pwd)``, ``"${ARGS[@]}"``, globs) in ``Verbatim`` so a parsed script renders back as
    the user wrote it. Serialized as ``{"verbatim": "..."}``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Verbatim({str.__repr__(self)})"
