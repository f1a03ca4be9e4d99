"""``hpcwidgets examples [NAME] [--profile P] [-o FILE] [--format shell|json|toml]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ..errors import HpcWidgetsError


def register(sub: argparse._SubParsersAction) -> None:
    from . import _Formatter, _add_output_options, _examples_epilog
    p = sub.add_parser("examples", help="list or print the shipped example jobs", formatter_class=_Formatter,
                       description="The shipped example jobs, filled in for a cluster profile.",
                       epilog=_examples_epilog([
                           "hpcwidgets examples --profile local",
                           "hpcwidgets examples multi-node-torchrun --profile generic -o job.sbatch",
                           "hpcwidgets examples array-sweep --format json > sweep.json   # edit, then: "
                           "hpcwidgets workflow --from sweep.json",
                       ]))
    p.add_argument("name", nargs="?", help="the example to print (omit to list them; --format json lists them as JSON)")
    p.add_argument("--profile", default="generic", metavar="NAME", help="cluster profile (default: generic)")
    p.add_argument("--account", metavar="PROJECT",
                   help="the account the job is charged to (#SBATCH --account): needed where the profile says "
                        "account_required and gives no account of its own")
    _add_output_options(p, model=False)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from . import emit, format_model
    from ..examples import examples
    found = examples(args.profile)
    if args.name is None:
        emit(args, _listing(found, args.format))
        return 0
    if args.name not in found:
        raise HpcWidgetsError(f"no example named {args.name!r} for profile {args.profile}; "
                              f"choose one of: {', '.join(found)}")
    model = found[args.name].model
    if args.account is not None:
        if not args.account.strip():
            raise HpcWidgetsError("--account: give the account's name, e.g. --account=proj123 (sacctmgr show "
                                  "associations user=$USER lists yours)")
        model = dataclasses.replace(model, job=dataclasses.replace(model.job, account=args.account))
    elif args.format == "shell":
        _refuse_without_account(args.profile, model.job)
    emit(args, format_model(model, args.format))
    return 0


def _refuse_without_account(profile_name: str, job) -> None:
    """Refuse a script the site rejects for naming no account (the profile's own job check says so); the model
    (--format json/toml) is still given, to edit."""
    from ..profiles import load_profile
    from ..spec.profile import check_job
    profile = load_profile(profile_name)
    for problem in check_job(profile, job):
        if problem.field == "account":
            raise HpcWidgetsError(f"{problem.message}; or give it here with --account=PROJECT "
                                  "(--format json or toml writes the model without one, to edit)")


def _listing(found: dict, fmt: str) -> str:
    """The examples' names and descriptions: aligned text, or (--format json/toml) a list a program can read."""
    if fmt == "shell":
        width = max(len(n) for n in found)
        return "".join(f"{name:<{width}}  {ex.description}\n" for name, ex in found.items())
    items = [{"name": name, "description": ex.description} for name, ex in found.items()]
    if fmt == "json":
        return json.dumps(items, indent=2, ensure_ascii=False) + "\n"
    from ..spec._toml import dumps
    return dumps({"examples": items})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace()))
