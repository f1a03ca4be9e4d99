"""``hpcwidgets lint FILE…``: check job scripts and build files against the rule catalogue (``docs/rules.md``).

Build files (Apptainer ``*.def``, ``Singularity``/``Singularity.<tag>``, ``Dockerfile*``, ``Containerfile*``, or text
starting with ``Bootstrap:`` or ``FROM``) are checked with the build-file rules (HPC7xx) only, job scripts with the
job-script rules only. Exit status: 0 no error-severity finding, 1 at least one, 2 a file could not be read or parsed
(HPC000). A folder stands for the job scripts in it and below it (files with an ``#SBATCH`` line) and the build files
(by the names above).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import HpcWidgetsError

if TYPE_CHECKING:
    from ..files import TextFile


def register(sub: argparse._SubParsersAction) -> None:
    from . import _Formatter, _examples_epilog
    p = sub.add_parser("lint", help="check job scripts and build files for known mistakes", formatter_class=_Formatter,
                       description="Check Slurm job scripts (Apptainer, Charliecloud, torchrun, Jupyter) against the "
                                   "catalogue of known mistakes. Build files are recognised (Apptainer definition files "
                                   "*.def, Singularity and Singularity.<tag>, Dockerfile*, Containerfile*, or a file "
                                   "starting with Bootstrap: or FROM) and "
                                   "checked with the build-file rules (HPC7xx: unpinned base image, secrets, …) instead "
                                   "of the job-script ones. --list-rules lists the rules, --explain CODE says why one "
                                   "matters and how to fix it. Suppress one finding with '# hpcw: disable=CODE' on its "
                                   "line.",
                       epilog=_examples_epilog([
                           "hpcwidgets lint job.sbatch",
                           "hpcwidgets lint --profile midway3 --format json jobs/*.sh",
                           "hpcwidgets lint Dockerfile env.def job.sbatch   # each with its own rules",
                           "hpcwidgets lint jobs/                   # every job script and build file in the folder and below it",
                           "hpcwidgets lint --fix job.sbatch        # applies mechanical fixes, keeps job.sbatch.bak",
                           "cat job.sbatch | hpcwidgets lint -",
                           "hpcwidgets lint --select HPC2 job.sbatch # only the container rules (HPC2xx)",
                           "hpcwidgets lint --explain HPC201        # why a rule matters, its fix, examples",
                       ]))
    p.add_argument("files", nargs="*", metavar="FILE", help="job scripts and build files to check, or folders holding them (their "
                                                          "files with an #SBATCH line and build files by their names, searched "
                                                          "recursively); "
                                                          "- reads standard input")
    p.add_argument("--profile", metavar="NAME", help="check the jobs against a cluster profile (partitions, limits, GPU vendor)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: path:line: severity CODE message (default); json: a list of finding objects")
    p.add_argument("--fix", action="store_true",
                   help="apply the mechanical fixes in place (atomically, keeping the original as FILE.bak, or FILE.bak.1 … when "
                        "that name is taken) and report what remains; build-file rules have no mechanical fixes. The "
                        "fixed file is a new file: other hard links to the old one keep the old text. A read-only "
                        "file, a device or a pipe is left as it is")
    p.add_argument("--select", default="", metavar="CODES", help="only these rules, e.g. HPC101,HPC102; the start of "
                                                                  "a code selects its group (HPC2: every HPC2xx rule)")
    p.add_argument("--ignore", default="", metavar="CODES", help="skip these rules, e.g. HPC209 (groups as for --select)")
    p.add_argument("--explain", metavar="CODE", help="print one rule's entry (why it matters, the fix, an example of each "
                                                     "side) and exit; a code or a rule's name")
    p.add_argument("--list-rules", action="store_true", help="print every rule's code, severity, name and summary and exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import FileError
    from ..files import read_stdin, read_text, special_kind
    from ..lint import explain_rule, lint, rule_codes, rule_list
    if args.explain is not None and not args.explain.strip():
        raise HpcWidgetsError("--explain was given no rule: name one by its code or name (--explain HPC201, --explain "
                              "gpu-flag-without-gpus); --list-rules lists them")
    if args.explain or args.list_rules:
        if args.files:
            raise HpcWidgetsError(f"{'--explain' if args.explain else '--list-rules'} prints the catalogue and checks "
                                  "no file; run it without FILE, then lint the files in a second command")
        sys.stdout.write(explain_rule(args.explain) if args.explain else rule_list())
        return 0
    if not args.files:
        raise HpcWidgetsError("give the job scripts to check (FILE…, a folder, or - for standard input), or "
                              "--explain CODE / --list-rules to read the catalogue")
    select, ignore = set(rule_codes(args.select, "--select")), set(rule_codes(args.ignore, "--ignore"))
    if args.fix and "-" in args.files:
        raise HpcWidgetsError("--fix rewrites files in place; give a file name instead of - (standard input)")
    profile = None
    if args.profile:
        from ..profiles import load_profile
        profile = load_profile(args.profile)
    findings = []
    status = 0
    unread: list[str] = []
    paths = _job_scripts(args.files)
    for path in paths:
        name = "<stdin>" if path == "-" else path
        kind = special_kind(path) if args.fix and path != "-" else ""
        if kind:  # <(…) or a device: reading it would consume it, and nothing can be written back
            print(f"hpcwidgets: error: {name} is {kind}, not a regular file, and --fix rewrites files in place; "
                  "check it without --fix, or save its text to a file and fix that", file=sys.stderr)
            status = 2
            unread.append(name)
            continue
        try:
            # line ends as written: sbatch refuses DOS line breaks, and the linter says so (HPC314)
            loaded = read_stdin(name, keep_newlines=True) if path == "-" else read_text(path, keep_newlines=True)
        except FileError as exc:
            print(f"hpcwidgets: error: {exc}", file=sys.stderr)
            status = 2
            unread.append(name)
            continue
        text = as_written(loaded, path)
        if args.fix:
            try:
                text = _fix(path, text, profile, select, ignore)
            except FileError as exc:
                print(f"hpcwidgets: error: {exc}", file=sys.stderr)
                status = 2
        found = lint(text, profile, path=name, select=select, ignore=ignore)
        if any(f.code == "HPC000" for f in found):
            status = 2
        findings += found
    if args.format == "json":
        sys.stdout.write(json.dumps([f.to_dict() for f in findings], indent=2, ensure_ascii=False) + "\n")
    else:
        for f in findings:
            print(f.format())
    if status == 0 and any(f.severity == "error" for f in findings):
        status = 1
    _summary(findings, len(paths) - len(unread), unread)
    return status


def as_written(loaded: "TextFile", path: str) -> str:
    """The text of a job script as bash and sbatch read the file: a UTF-8 byte-order mark (which the reader
    drops) is put back in front of the #! line, for the linter to report it like any finding (HPC315, whose fix
    removes it). A build file's mark is only dropped (its tools read past it); before anything but #! the
    first line lacks the #! sbatch needs anyway, which HPC315 reports of the text without the mark."""
    from ..parse.buildfiles import build_file_format
    if loaded.bom and loaded.text.startswith("#!") and not build_file_format(loaded.text, "" if path == "-" else path):
        return "\ufeff" + loaded.text
    return loaded.text


#: folders never searched for job scripts: tools' and environments' own files
_SKIPPED_FOLDERS = {"node_modules", "__pycache__", "site-packages", "venv"}
#: names a job script has: these endings, or none (``run_training``)
_SCRIPT_ENDINGS = (".sh", ".bash", ".sbatch", ".slurm", ".job", ".batch", ".sub", ".cmd")


def _job_scripts(given: list[str]) -> list[str]:
    """The files to check: each name as given, and for a folder the job scripts in it and below it (sorted;
    hidden folders, virtual environments and node_modules skipped). A folder without one is an error."""
    out: list[str] = []
    for path in given:
        if path == "-" or not os.path.isdir(path):
            out.append(path)
            continue
        found = []
        for root, folders, files in os.walk(path):
            folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in _SKIPPED_FOLDERS)
            found += [os.path.join(root, f) for f in sorted(files) if _looks_like_job(os.path.join(root, f))]
        if not found:
            raise HpcWidgetsError(f"no job scripts in {path}: none of its files (here or below) has an #SBATCH line or is "
                                  "a build file (*.def, Singularity*, Dockerfile*, Containerfile*); name the files to check instead")
        out += found
    return out


def _looks_like_job(path: str) -> bool:
    """A job script (an #SBATCH line in a file with a script's name) or a build file (by its name: ``*.def``,
    ``Singularity``, ``Singularity.<tag>``, ``Dockerfile*``, ``Containerfile*``)."""
    from ..parse.buildfiles import build_file_name
    name = os.path.basename(path)
    if not name.startswith(".") and build_file_name(name):
        return True
    if name.startswith(".") or not (name.endswith(_SCRIPT_ENDINGS) or "." not in name):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return False
    return b"#SBATCH" in head


def _summary(findings: list, checked: int, unread: list[str]) -> None:
    """The closing count line; files that could not be read are named, never counted as checked (clean).
    With no file read there is nothing to count: each file's own error has been printed."""
    if not checked:
        return
    not_read = f"not checked (could not be read): {', '.join(unread)}"
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    print(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info in "
          f"{checked} file(s)" + (f"; {not_read}" if unread else ""), file=sys.stderr)


def _fix(path: str, text: str, profile: object, select: "set[str] | tuple[str, ...]" = (),
         ignore: "set[str] | tuple[str, ...]" = ()) -> str:
    """Apply the fixes, write the file (keeping a backup under a fresh name) and report what was fixed.

    FileError when the file cannot be written, or is read-only (a rename would replace it all the same, but
    its mode says it is not to be edited); the original is then unchanged. The fixed text is a new file:
    other hard links to the old one keep the old text, so that is said.
    """
    from ..errors import FileError, ParseError
    from ..files import write_file
    from ..fixes import fix
    try:
        new, fixed, waiting = fix(text, profile, path=path, select=select, ignore=ignore)  # --select: only theirs
    except ParseError:
        new, fixed, waiting = text, [], ""  # lint reports it as HPC000
    if not fixed or new == text:
        print(f"{path}: {'nothing fixed: ' + waiting if waiting else 'nothing to fix automatically'}", file=sys.stderr)
        return text
    info = os.stat(path)
    if not os.access(path, os.W_OK) or not info.st_mode & 0o222:
        raise FileError(f"{path} is read-only (mode {stat.S_IMODE(info.st_mode):o}), so --fix leaves it as it is; "
                        f"make it writable first (chmod u+w {shlex.quote(path)}), or fix a copy", path)
    written = write_file(path, new, force=True, backup=True)
    for f in fixed:
        print(f"{path}:{f.line}: fixed {f.code}: {f.fix.description if f.fix else f.message}", file=sys.stderr)
    if waiting:
        print(f"{path}: the other fixes wait: {waiting}", file=sys.stderr)
    linked = str(written.path) != str(Path(path).expanduser().absolute())
    where = f" (wrote {written.path}, the file the link points to)" if linked else ""
    print(f"{path}: {len(fixed)} fix(es) applied{where}; the original is kept as {written.backup}", file=sys.stderr)
    if info.st_nlink > 1:
        others = info.st_nlink - 1
        names = ("another name (a hard link), which keeps" if others == 1
                 else f"{others} other names (hard links), which keep")
        print(f"hpcwidgets: note: {path} had {names} the original text, as the backup does", file=sys.stderr)
    return new
