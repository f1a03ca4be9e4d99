"""``hpcwidgets profile list|show|check|detect``."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    from . import _Formatter, _examples_epilog
    p = sub.add_parser("profile", help="cluster profiles (sites as data)", formatter_class=_Formatter,
                       description="List, show or detect cluster profiles. Add your own as TOML files in "
                                   "~/.config/hpcwidgets/profiles/ or a directory named in $HPCW_PROFILE_PATH.")
    actions = p.add_subparsers(dest="profile_action", metavar="ACTION")
    actions.required = True
    ls = actions.add_parser("list", help="profile names and where they come from")
    ls.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="print a profile as TOML (or JSON)", formatter_class=_Formatter)
    show.add_argument("name", help="a profile name or a path to a .toml file")
    show.add_argument("--name", dest="new_name", metavar="NEW",
                      help="write it under another name: the start of your own site's profile")
    _add_profile_output(show)
    show.set_defaults(handler=run_show)
    check = actions.add_parser("check", help="read a profile and report every problem in it",
                               formatter_class=_Formatter)
    check.add_argument("name", help="a profile name or a path to a .toml file")
    check.set_defaults(handler=run_check)
    from ..run.detect import FROM_DIR_HELP
    detect = actions.add_parser("detect", formatter_class=_Formatter,
                                help="build a profile from the Slurm cluster you are on (or its saved output)",
                                description="Build a profile from the Slurm this machine talks to, or with --from-dir "
                                            "from its output saved on the cluster (by you or a colleague). What needs "
                                            "your review is printed as notes on stderr.",
                                epilog=_examples_epilog([
                                    "hpcwidgets profile detect --name mysite -o ~/.config/hpcwidgets/profiles/mysite.toml",
                                    "hpcwidgets profile detect --name mysite --from-dir saved/",
                                ]))
    detect.add_argument("--name", default="detected", help="name for the new profile")
    detect.add_argument("--from-dir", metavar="DIR", help=FROM_DIR_HELP)
    _add_profile_output(detect)
    detect.set_defaults(handler=run_detect)


def _add_profile_output(p: argparse.ArgumentParser) -> None:
    """The shared output options, with --format saying what a profile is printed as (TOML unless json is asked;
    shell is accepted as other commands take it and also gives TOML)."""
    from . import _add_output_options
    _add_output_options(p, model=False, format_default="toml",
                        format_help="toml: the profile as a TOML file (default; shell gives the same); json: the "
                                    "model as JSON.")


def run_list(args: argparse.Namespace) -> int:
    from ..profiles import list_profiles, load_profile
    notes: list[str] = []
    found = list_profiles(notes=notes)
    for note in notes:  # a folder on the search path that cannot be read: skipped, and said so
        print(f"hpcwidgets: note: {note}", file=sys.stderr)
    width = max((len(n) for n in found), default=4)
    broken = []
    for name, path in found.items():
        try:
            desc = load_profile(path).description.split("\n")[0]
        except Exception as exc:  # a broken user profile must not hide the others
            broken.append(name)
            desc = f"(cannot be read: {_first_line(str(exc), path)})"
        print(f"{name:<{width}}  {desc}  [{path}]")
    if broken:  # listed with the others, and the exit status says so (1, as lint's for what a check found)
        print(f"hpcwidgets: error: {len(broken)} profile{'s' if len(broken) != 1 else ''} cannot be read "
              f"({', '.join(broken)}); hpcwidgets profile check NAME lists every problem of one", file=sys.stderr)
        return 1
    return 0


def _first_line(message: str, path) -> str:
    """A profile's error on one line, without the file's path (the listing shows it): its one problem, or the first
    line and "…" when more follow (profile check lists them all)."""
    import re
    lines = [line for line in message.strip().splitlines() if line.strip()] or [""]
    if len(lines) == 2 and lines[1].lstrip().startswith("- "):
        return lines[1].strip()[2:]
    first = lines[0]
    if first.startswith(f"{path}:"):
        first = first[len(f"{path}:"):].lstrip()
        place = re.match(r"(\d+)(?::(\d+))?: ", first)
        if place:
            first = f"line {place.group(1)}: {first[place.end():]}"
    return first + (" …" if len(lines) > 1 else "")


def _emit_profile(args: argparse.Namespace, profile) -> int:
    from . import emit
    from ..profiles import profile_to_toml
    text = profile.to_json() + "\n" if args.format == "json" else profile_to_toml(profile)
    emit(args, text)
    return 0


#: a name a profile can be found by: its file is NAME.toml in a folder of the search path
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def _check_new_name(name: str) -> None:
    """Refuse a name no profile file can carry (``a/../b``, ``my site``, ``x.toml``): a profile is found by its file's
    name, and --name names the profile written."""
    if not _PROFILE_NAME.fullmatch(name) or name.endswith(".toml"):
        from ..errors import HpcWidgetsError
        raise HpcWidgetsError(f"--name {name!r} cannot name a profile: a profile is found by its file's name (NAME.toml "
                              "in a folder of the search path), so use letters, digits and _ . + - only, e.g. "
                              "--name mysite, and save it as mysite.toml")


def run_show(args: argparse.Namespace) -> int:
    from ..profiles import load_profile
    if args.new_name is not None:
        _check_new_name(args.new_name)
    profile = load_profile(args.name)
    if args.new_name:
        profile = profile.replace(name=args.new_name)
    return _emit_profile(args, profile)


def run_check(args: argparse.Namespace) -> int:
    """Load the profile (errors name the file, the line and the fix, and exit with status 2)."""
    from ..profiles import _resolve, load_profile, profile_notes
    profile = load_profile(args.name)
    for note in profile_notes(args.name):
        print(f"hpcwidgets: note: {note}", file=sys.stderr)
    parts = [p.name for p in profile.partitions]
    if not parts:  # valid, but the profile then checks nothing a job asks of the cluster
        print("hpcwidgets: note: the profile has no [[partitions]] tables: a job's partition, time limit and size "
              "are checked against nothing (any partition it names passes), and the examples name no partition; "
              "add a [[partitions]] table for each partition (hpcwidgets profile detect writes them from the "
              "cluster's Slurm)", file=sys.stderr)
    print(f"{_resolve(args.name)}: profile {profile.name!r} is valid: {len(parts)} partition"
          f"{'s' if len(parts) != 1 else ''} ({', '.join(parts) or 'none'}), runtimes {', '.join(profile.runtimes)}"
          f"{_arch_summary(profile)}")
    return 0


def _arch_summary(profile: Any) -> str:
    """The CPU architecture for check's summary line: the site's (``, CPU architecture aarch64``), each partition's
    where they differ, "" where the profile does not say."""
    arch = profile.site_arch()
    if arch:
        return f", CPU architecture {arch}"
    known = [(p.name, profile.arch_of(p)) for p in profile.partitions if profile.arch_of(p)]
    return f", CPU architectures {', '.join(f'{name} {a}' for name, a in known)}" if known else ""


def run_detect(args: argparse.Namespace) -> int:
    """Print or save the detected profile; what needs review goes to stderr as notes (not into the TOML)."""
    from ..run.detect import detect_from_saved, detect_profile
    _check_new_name(args.name)
    notes: list[str] = []
    if args.from_dir:
        profile = detect_from_saved(args.from_dir, args.name, notes=notes)
    else:
        profile = detect_profile(args.name, notes=notes)
    for note in notes:
        print(f"hpcwidgets: note: {note}", file=sys.stderr)
    return _emit_profile(args, profile)
