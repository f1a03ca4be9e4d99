"""Actions with side effects: submitting and watching Slurm jobs, running containers, the practice cluster.

Everything here talks to real programs (``sbatch``, ``squeue``, ``sacct``, ``ch-run``, the Slurm daemons)
through argument vectors, never through a shell string. The pure models live in :mod:`hpcwidgets.spec`
and the text they render to in :mod:`hpcwidgets.render`; this package only executes.
"""
