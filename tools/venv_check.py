"""Check the project's venv before make uses it, and make it again when it cannot serve (``make venv``).

    python3 tools/venv_check.py --venv .venv --min 3.10 --python python3 [--named] [--check-only]

The venv serves when its Python runs, is ``--min`` or newer (the Makefile reads it from pyproject.toml's
requires-python), has pip, and, with ``--named`` (PYTHON was given on make's command line or in the environment),
is the version of ``--python``. Then nothing is said and the exit status is 0.

Otherwise ``--check-only`` exits 1, saying nothing: make's quick check, which the venv's own Python runs (a few
milliseconds; any failure, even a Python too old to read this file, sends make to the full check). The full check
makes the venv again with ``PYTHON -m venv --clear VENV`` (--clear also removes make's install stamp, so the install
runs again) and says so, or stops with the fix, exit 1, where ``--python`` is not there, is older than ``--min``, or
cannot make a venv with pip (Debian and Ubuntu ship ensurepip in python3-venv; without it ``python3 -m venv`` stops
half-way and leaves a venv without pip).

It runs before any venv exists, on any Python 3 (python3 here may be older than the project allows): stdlib only,
no f-strings.
"""

from __future__ import print_function

import argparse
import os
import shlex
import sys

# subprocess and shutil are imported where they are used: make's quick check, run by the venv's own Python, needs
# neither (it runs on every `make lab`)

#: asked of ``--python``: its version as ``X.Y``
VERSION = 'import sys; print("%d.%d" % sys.version_info[:2])'
#: asked of the venv's Python: its version and whether it has pip
VERSION_AND_PIP = 'import sys, importlib.util as u; print("%d.%d" % sys.version_info[:2], bool(u.find_spec("pip")))'
#: how to name another Python, in every message that needs one
ANOTHER = "make lab PYTHON=python3.11"


def version_of(text):
    """``"3.10"`` as ``(3, 10)``; None for anything else."""
    parts = (text or "").strip().split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def ask(command, code):
    """What ``command -c code`` prints, or None when it does not run or fails."""
    import subprocess
    try:
        with open(os.devnull, "wb") as devnull:
            out = subprocess.check_output(command + ["-c", code], stderr=devnull)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.decode("utf-8", "replace").strip()


def venv_python(venv):
    """The venv's Python as (version, has pip), or None when it does not run (no venv, or its Python is gone)."""
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):    # run by that Python itself: no second start
        import importlib.util
        return tuple(sys.version_info[:2]), importlib.util.find_spec("pip") is not None
    answer = (ask([os.path.join(venv, "bin", "python")], VERSION_AND_PIP) or "").split()
    version = version_of(answer[0]) if len(answer) == 2 else None
    return (version, answer[1] == "True") if version else None


def serves(state, minimum, want=None):
    """Whether a venv whose Python is ``state`` (see :func:`venv_python`) serves: new enough, with pip, and of
    version ``want`` (``X.Y``) when one is asked for."""
    return bool(state) and state[0] >= minimum and state[1] and (want is None or want == "%d.%d" % state[0])


def error(message):
    print("error: " + message, file=sys.stderr)
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description="Check the venv make uses; make it again when it cannot serve.")
    parser.add_argument("--venv", default=".venv", help="the venv's folder (default .venv)")
    parser.add_argument("--min", required=True, metavar="X.Y", help="the oldest Python the project runs on")
    parser.add_argument("--python", default="python3", help="the Python that makes the venv (default python3)")
    parser.add_argument("--named", action="store_true",
                        help="--python was named (make's PYTHON=): a venv of another version is made again")
    parser.add_argument("--check-only", action="store_true", help="only say, by the exit status, whether it serves")
    args = parser.parse_args(argv)
    minimum = version_of(args.min)
    if minimum is None:
        return error("--min %s is not a Python version X.Y (the Makefile reads it from requires-python = \">=X.Y\" "
                     "in pyproject.toml)" % args.min)
    python = shlex.split(args.python)
    # a named Python that does not run matches no venv: the full check then says it is not there
    want = (ask(python, VERSION) or "none") if args.named else None
    if serves(venv_python(args.venv), minimum, want):
        return 0
    if args.check_only:
        return 1

    import shutil
    import subprocess
    if not python or shutil.which(python[0]) is None:
        return error("there is no %s here; hpcwidgets needs Python >= %s: install it, or name another: %s"
                     % (args.python, args.min, ANOTHER))
    have = ask(python, VERSION)
    if version_of(have) is None:
        return error("%s does not run as a Python (it printed no version); name a Python >= %s, e.g. %s"
                     % (args.python, args.min, ANOTHER))
    if version_of(have) < minimum:
        return error("%s is Python %s; hpcwidgets needs Python >= %s: name a newer one, e.g. %s"
                     % (args.python, have, args.min, ANOTHER))
    if os.path.exists(args.venv):
        why = "no pip, or a Python that is gone or older than %s%s" % (
            args.min, ", or not %s's version" % args.python if args.named else "")
        print("%s is not usable (%s): making it again with %s (Python %s)" % (args.venv, why, args.python, have))
    else:
        print("making %s with %s (Python %s)" % (args.venv, args.python, have))
    sys.stdout.flush()    # before venv's own output
    made = subprocess.call(python + ["-m", "venv", "--clear", args.venv]) == 0
    if not (made and serves(venv_python(args.venv), minimum)):
        return error("%s (Python %s) cannot make a venv with pip: its ensurepip is missing. On Debian or Ubuntu: sudo "
                     "apt install python3-venv (python%s-venv for a python%s that is not the default python3), then "
                     "run make again; or name another Python: %s" % (args.python, have, have, have, ANOTHER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
