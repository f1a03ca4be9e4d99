"""Rules about what reaches the program from outside its command line: the environment the batch shell, Slurm,
the container runtime and the launcher hand it (GPU visibility variables, temporary folders, modules, signals), and
where its host names and devices come from.

Imported at the end of :mod:`hpcwidgets.lint.catalogue`, whose helpers the rules share.
"""

from __future__ import annotations
