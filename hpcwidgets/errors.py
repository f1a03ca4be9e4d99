"""The package's exceptions: one root, specific subclasses, messages that name the fix."""

from __future__ import annotations

from dataclasses import dataclass


class HpcWidgetsError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a model: which field, what is wrong and how to fix it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ValidationError(HpcWidgetsError, ValueError):
    """A model (or a request against a cluster profile) has one or more problems.

    ``problems`` lists every problem found, not only the first, so a form or the CLI can
    show all of them at once.
    """

    def __init__(self, problems: list[Problem] | tuple[Problem, ...], subject: str = ""):
        self.problems = tuple(problems)
        self.subject = subject
        head = f"{subject} is not valid" if subject else "invalid input"
        lines = [f"{head} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class ParseError(HpcWidgetsError, ValueError):
    """Text that could not be read as a shell command or job script."""

    def __init__(self, message: str, line: int = 0, column: int = 0, source: str = ""):
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        where = f"{source or '<text>'}:{line}:{column}: " if line else ""
        super().__init__(f"{where}{message}")


class ProfileError(HpcWidgetsError, LookupError):
    """A cluster profile that cannot be found or read."""


class UnknownFieldError(HpcWidgetsError, KeyError):
    """A field name a model does not have; the message lists the valid ones."""

    def __init__(self, model: str, name: str, valid: list[str]):
        self.model = model
        self.name = name
        self.valid = valid
        import difflib
        near = difflib.get_close_matches(str(name), valid, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        super().__init__(f"{model} has no field {name!r}{hint}; valid fields: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError quotes its argument; keep the plain message
        return self.args[0]


class OverwriteError(HpcWidgetsError, FileExistsError):
    """Refusing to replace an existing file without an explicit request to do so."""


class FileError(HpcWidgetsError, OSError):
    """A file that cannot be read or written as asked; the message names the path and the fix."""

    def __init__(self, message: str, path: str = ""):
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:  # OSError would format (errno, strerror) tuples; keep the plain message
        return str(self.args[0]) if self.args else ""


class RunError(HpcWidgetsError, RuntimeError):
    """An external command (sbatch, squeue, ch-run, …) failed; carries its output."""

    def __init__(self, message: str, argv: list[str] | None = None, returncode: int | None = None,
                 stderr: str = "", timed_out: bool = False):
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr
        self.timed_out = timed_out  # killed after waiting too long: what it did by then is not known
        super().__init__(message)
