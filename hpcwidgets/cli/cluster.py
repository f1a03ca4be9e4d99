"""``hpcwidgets practice-cluster up|down|status|env``: a real Slurm on this machine."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("practice-cluster", help="start/stop a two-node practice Slurm cluster here (root)",
                       description="Install (apt) and start munge, slurmctld and two slurmd (nodes n1, n2; 2 CPUs and "
                                   "2 fake GPUs each) with all state in one private directory. Matches the 'local' profile.")
    p.add_argument("action", choices=("up", "down", "status", "env"))
    p.add_argument("--no-install", action="store_true", help="do not install missing packages with apt")
    p.add_argument("--no-image", action="store_true",
                   help="up: do not build the Charliecloud trainer image the 'local' examples run in")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..run.practice_cluster import main
    return main([args.action] + (["--no-install"] if args.no_install else []) + (["--no-image"] if args.no_image else []))
