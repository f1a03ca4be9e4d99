"""Rules about the ``#SBATCH`` lines (where they stand, how they are spelt, the values Slurm would refuse or read
differently, the steps' requests against the job's) and about the script file itself (line endings, the ``#!``
line, an empty script): what sbatch reads before the job starts.

Imported by :func:`hpcwidgets.lint.rules`; the helpers the rules share are in :mod:`hpcwidgets.lint.catalogue`.
"""

from __future__ import annotations

import itertools
import re
import shlex
from typing import Any, Iterator

from ..errors import ParseError
from ..parse.lexer import first_command_line, lex_script
from ..spec.slurm import (HETJOB_SEPARATORS, PYXIS_SWITCHES, PYXIS_VALUE_OPTIONS, SBATCH_ALIASES, SBATCH_OPTIONS,
                          SBATCH_SHORT, STRAY_DIRECTIVE, TYPED_DASH, array_task_ids, node_range, sbatch_long_option,
                          sbatch_option)
from ..spec.profile import ntasks_per_core, one_thread_per_core
from ..spec.units import is_number
from . import Context, Fix, rule
from .catalogue import (_CPUS_INHERITED_SINCE, _Inner, _component_problems, _first_directive_line, _in_component,
                        _is_monitor, _simple_commands, _typographic_option, as_int, cached, het_groups, heterogeneous,
                        in_job_component, job_components, job_nodes, job_tasks, run_words, simple_commands, steps,
                        threads_per_core, trap_handler_code, written_option)
from .parallel_steps import background_steps
from .shell import directive_placeholders


# --------------------------------------------------------------------------------------------
# Slurm directives

@rule("HPC501", "directive-after-command", "error",
      summary="#SBATCH line after the first command: sbatch ignores it",
      why="sbatch stops reading directives at the first command, so the resource request silently does not "
          "happen (the job gets the defaults: often one CPU, no GPU, a short time limit).",
      fix="Move every #SBATCH line up, directly under the #!/bin/bash line.",
      catalogue=(13,),
      bad="""#!/bin/bash
module load cuda
#SBATCH --gres=gpu:1
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
module load cuda
python train.py
""")
def _late_directive(ctx: Context) -> Iterator[Any]:
    first = ctx.parsed.first_command
    late = {d.line: d.flag for d in reversed(ctx.parsed.directives) if not d.applied}
    for cmd in ctx.parsed.lexed.directives:  # also a line the reader could not read (#SBATCH -i with no value)
        words = cmd.text.split("\n", 1)[0].split()[1:]
        if first and cmd.line >= first and cmd.line not in late and words and not words[0].startswith("#"):
            late[cmd.line] = words[0]
    unread = {}  # what HPC310 would say of the line once it is moved up: said here, where sbatch reads nothing
    for line, message in ctx.parsed.problems:
        unread.setdefault(line, message)
    from .submitted import submitted_scripts
    driver = next(iter(submitted_scripts(ctx)), None) if not any(d.applied for d in ctx.parsed.directives) else None
    for line in sorted(late):
        if driver is not None:
            # a driver: the job scripts it submits are the ones sbatch reads
            given = f"{driver.file}, written on line {driver.doc_line}" if driver.file else \
                f"the here-document on line {driver.doc_line}"
            yield (line, f"#SBATCH {late[line]} is in a script that submits its job itself (sbatch on line "
                         f"{driver.sbatch_line}), where it does nothing: the job's #SBATCH lines are those of the job "
                         f"script it hands sbatch ({given}); put it there, or give it to sbatch on its command line")
            continue
        then = f" (and fix it there: {unread[line]})" if line in unread else _unexpanded_when_moved(ctx, line)
        yield (line, f"#SBATCH {late[line]} comes after the first command (line {first}), so sbatch ignores it; "
                     f"move it above the first command{then}")


#: SlurmJob problems → stable codes (by the field the problem is about)
PROBLEM_CODES = {
    "time": "HPC301", "mem": "HPC302", "mem_per_cpu": "HPC302", "mem_per_gpu": "HPC302",
    "cpus_per_gpu": "HPC303", "array": "HPC304", "output": "HPC305", "error": "HPC305", "chdir": "HPC305",
    "job_name": "HPC306", "gpus_per_node": "HPC307", "gpu_type": "HPC307", "gpus": "HPC307",
    "nodes": "HPC308", "ntasks": "HPC308", "ntasks_per_node": "HPC308", "cpus_per_task": "HPC308",
    "gpus_per_task": "HPC308",
}

#: any other SlurmJob problem
OTHER_JOB_PROBLEM = "HPC399"

#: fields set by the directives of other fields, tried in order: --gres=gpu:TYPE:N (read as gpus_per_node) gives
#: gpu_type and the other items of a --gres, --gpus=TYPE:N gives gpu_type
_FIELD_SET_BY = {"other_gres": ("gpus_per_node",), "gpu_type": ("gpus_per_node", "gpus", "gpu_type")}

#: SlurmJob fields read from the script body, not from #SBATCH lines: their own rules report them
NOT_DIRECTIVES = ("modules",)

#: the job model's message for a $VAR in a directive (sbatch does not expand it), whatever the field
UNEXPANDED = "not read by the shell"


def job_findings(ctx: Context) -> dict[str, list[tuple[int, str]]]:
    """The job's own problems (from its directives), by code, at the directive's line."""
    def make() -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        if not ctx.parsed.directives:
            return out
        for p in ctx.job.problems() + ctx.job.advice():   # advice: what sbatch takes but is better otherwise
            field = p.field.split(".", 1)[0]
            if field in NOT_DIRECTIVES:
                continue  # from the script body, not an #SBATCH line: reported at its own line (HPC510)
            if field in ("output", "error", "chdir") and "'~' is not expanded" in p.message:
                continue  # HPC311 reports a ~ in an #SBATCH path, in the directive's own words
            if field == "extra_directives" and (STRAY_DIRECTIVE in p.message or TYPED_DASH in p.message):
                continue  # a word that is not an option: HPC310 (or HPC515 for a typographic dash) reports it
            code = "HPC305" if UNEXPANDED in p.message else PROBLEM_CODES.get(field, OTHER_JOB_PROBLEM)
            # the other items of a --gres are on its line; an option the model keeps as written (--signal=…) on
            # the line that gives it; every other field's on the directive that set it
            line = _extra_directive_line(ctx, p.message) if field == "extra_directives" else None
            line = line or next((d.line for d in map(ctx.parsed.directive, _FIELD_SET_BY.get(field, (field,)))
                                 if d is not None), _first_directive_line(ctx))
            out.setdefault(code, []).append((line, p.message))
        for code, line, message in _empty_values(ctx):
            if not any(at == line for at, _ in out.get(code, [])):  # an empty count: the model's HPC308 says it
                out.setdefault(code, []).append((line, message))
        out.setdefault("HPC307", []).extend(_gres_and_gpus_per_node(ctx))
        if not out["HPC307"]:
            del out["HPC307"]
        for view, line, p in _component_problems(ctx, lambda job: job.problems() + job.advice()):
            field = p.field.split(".", 1)[0]
            if UNEXPANDED in p.message or field in NOT_DIRECTIVES or (
                    field == "extra_directives" and (STRAY_DIRECTIVE in p.message or TYPED_DASH in p.message)):
                continue  # reported for every component by their own rules
            out.setdefault(PROBLEM_CODES.get(field, OTHER_JOB_PROBLEM), []).append((line, _in_component(view, p)))
        unexpanded = _unexpanded_directives(ctx, out.get("HPC305", []))
        if unexpanded:
            out["HPC305"] = sorted(out.get("HPC305", []) + unexpanded)
            # the same value's other complaint ('$N' is not a count) says less than why it is wrong: HPC305 alone
            lines = {line for line, _ in unexpanded}
            for code in [c for c in out if c != "HPC305"]:
                out[code] = [(line, m) for line, m in out[code] if not (line in lines and "$" in m)]
                if not out[code]:
                    del out[code]
        return out
    return cached(ctx, "job_problems", make)


#: sbatch options that refuse an empty value (sbatch 22.05: "Invalid --time specification", "Invalid numeric value")
#: and submit nothing; an empty --account, --partition or --output is taken, and the default used
_REFUSED_EMPTY = frozenset({
    "--bbf", "--begin", "--clusters", "--cores-per-socket", "--cpu-freq", "--cpus-per-gpu", "--cpus-per-task",
    "--deadline", "--delay-boot", "--distribution", "--export-file", "--gid", "--gpu-bind", "--gpu-freq",
    "--gres-flags", "--hint", "--kill-on-invalid-dep", "--mail-type", "--mem", "--mem-bind", "--mem-per-cpu",
    "--mem-per-gpu", "--mincpus", "--nodefile", "--nodes", "--ntasks", "--ntasks-per-core", "--ntasks-per-gpu",
    "--ntasks-per-node", "--ntasks-per-socket", "--open-mode", "--profile", "--signal", "--sockets-per-node",
    "--switches", "--thread-spec", "--threads-per-core", "--time", "--time-min", "--tmp", "--uid"})

#: what to write instead of an empty value, for the options most often left blank
_EMPTY_EXAMPLE = {"--time": "01:00:00", "--time-min": "00:30:00", "--mem": "16G", "--mem-per-cpu": "4G",
                  "--mem-per-gpu": "16G", "--tmp": "10G", "--mail-type": "END,FAIL"}


def _option_name(flag: str) -> str:
    """The sbatch option a directive's flag is, by its full name: ``--partition`` for ``-p`` and ``--part``,
    ``--ntasks-per-node`` for ``--tasks-per-node``; "" for an option sbatch does not have."""
    long = SBATCH_SHORT.get(flag) or sbatch_long_option(flag)
    return SBATCH_ALIASES.get(long, long)


def _empty_values(ctx: Context) -> Iterator[tuple[str, int, str]]:
    """``(code, line, message)`` for each #SBATCH option sbatch reads with an empty value it refuses (``--time=``,
    ``--mem=""``): a form field left blank, or a value a template never filled in. The job model cannot tell an
    empty text from an unset one, so the directives are read here."""
    for d in ctx.parsed.directives:
        name = _option_name(d.flag)
        if not d.applied or d.value != "" or name not in _REFUSED_EMPTY:
            continue
        example = _EMPTY_EXAMPLE.get(name)
        value = f"a value (e.g. {name}={example})" if example else "its value"
        yield (PROBLEM_CODES.get(d.field, OTHER_JOB_PROBLEM), d.line,
               f"{d.flag} is given no value: sbatch refuses an empty {name} and submits nothing; write {value} or "
               "remove the line")


def _gpu_items(value: str, gres: bool) -> list[tuple[str, int]] | None:
    """The GPUs per node a --gres value (``gres``) or a --gpus-per-node value asks for: ``(type, count)`` for each
    GPU item, the type "" when none is named (``gpu:a100:2`` → ("a100", 2); ``4`` → ("", 4)); None when a count
    is not a plain number, so nothing can be said of it."""
    out = []
    for item in filter(None, value.split(",")):
        parts = item.split(":")
        if gres:
            if parts[0].removeprefix("gres/") != "gpu":
                continue  # another generic resource (lscratch:100, nvme:10)
            parts = parts[1:]
        if len(parts) == 2:
            kind, count = parts
        elif not parts or parts[0][:1].isdigit():
            kind, count = "", parts[0] if parts else "1"  # gpu alone is one GPU
        elif len(parts) == 1:
            kind, count = parts[0], "1"
        else:
            return None
        if not is_number(count):
            return None
        out.append((kind.lower(), int(count)))
    return out


def _gpus(count: int) -> str:
    """``count`` GPUs in words (1 GPU, 2 GPUs)."""
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def _gres_and_gpus_per_node(ctx: Context) -> list[tuple[int, str]]:
    """HPC307 for a job (or a heterogeneous job's component) that asks for GPUs with both --gres=gpu… and
    --gpus-per-node (the last of each, as sbatch keeps them). sbatch sends both as GPUs per node, --gpus-per-node
    first and --gres after it, and slurmctld reads them in that order into one record per GPU type, a later count
    replacing an earlier one (gres_job_state_validate in Slurm's gres.c): the --gres count wins, wherever the
    lines stand. A typed request beside an untyped one is refused; two types are both allocated."""
    last: dict[tuple[int, str], Any] = {}
    for d in ctx.parsed.directives:
        if d.applied and d.flag in ("--gres", "--gpus-per-node"):
            last[(d.component, d.flag)] = d
    out = []
    for (component, flag), per_node in last.items():
        gres = last.get((component, "--gres"))
        if flag != "--gpus-per-node" or gres is None:
            continue
        asked, given = _gpu_items(per_node.value, gres=False), _gpu_items(gres.value, gres=True)
        if not asked or not given:
            continue
        both = f"--gres={gres.value} (line {gres.line}) and --gpus-per-node={per_node.value} (line {per_node.line})"
        kept = {kind: count for kind, count in asked + given}  # in Slurm's order: --gres last
        line = max(gres.line, per_node.line)
        if "" in kept and len(kept) > 1:
            out.append((line, f"{both} ask for GPUs with a type and without one: Slurm refuses the job (\"Invalid GRES "
                              "specification (with and without type identification)\"); keep one of the two lines"))
        elif len(kept) > 1:
            kinds = " and ".join(f"{count} {kind}" for kind, count in kept.items())
            out.append((line, f"{both} ask for two kinds of GPU: Slurm asks for both on every node, {kinds} GPUs, "
                              "which a node with one kind of GPU cannot give; keep one of the two lines"))
        elif dict(asked) != kept:
            out.append((line, f"{both} both set the GPUs per node: Slurm keeps the --gres count whatever the order of "
                              f"the lines, so each node gets {_gpus(kept.popitem()[1])}, not {asked[0][1]}; keep one of "
                              "the two lines"))
    return out


def _extra_directive_line(ctx: Context, message: str) -> int | None:
    """The line of the job's (first component's) directive a problem with a kept-as-written option names at its
    start (``--signal=USR1@60s: …``); None when no directive gives that option."""
    option = re.split(r"[=:\s]", message, maxsplit=1)[0]
    return next((d.line for d in ctx.parsed.directives if d.applied and not d.component
                 and sbatch_long_option(d.flag) == option), None)


#: a reference the shell would expand: $NAME, ${…}, $(…), $1
_DIRECTIVE_REF = re.compile(r"\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*|\(|[0-9])")

#: options whose value is free text, where "$5" is a price or a label, not the script's fifth argument
_FREE_TEXT_OPTIONS = ("--comment",)


def _unexpanded_directives(ctx: Context, reported: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """HPC305 for the #SBATCH values with a $VARIABLE that the job model does not report itself: the options it
    holds no field for (--dependency, --export, --signal, --nodelist, --begin, --container …), counts (--nodes=$N),
    a directive a later one overrides, and every directive of a heterogeneous job's later components. A reference
    written in single quotes or after a backslash is meant as text (sbatch keeps it so) and not reported, nor is
    ``$5`` in a free-text option such as --comment (a price, not the script's fifth argument)."""
    out: list[tuple[int, str]] = []
    for d in ctx.parsed.directives:
        refs = [m for m in _DIRECTIVE_REF.finditer(d.value)
                if not (m.group(0)[1:].isdigit() and sbatch_long_option(d.flag) in _FREE_TEXT_OPTIONS)]
        ref = refs[0] if refs else None
        if not d.applied or ref is None or not _DIRECTIVE_REF.search(_unquoted_text(ctx.parsed.lines[d.line - 1])):
            continue
        if any(line == d.line and _reported_value(message) in d.value for line, message in reported):
            continue  # the job model's own message for this value
        out.append((d.line, f"#SBATCH {written_option(d.flag, d.value)}: #SBATCH lines are not read by the shell, so "
                            f"{ref.group(0)} is not expanded; write the value itself, or give the option on the sbatch "
                            "command line, where the shell expands it"))
    return out


def _unexpanded_when_moved(ctx: Context, line: int) -> str:
    """What HPC305 (HPC311) would say of a late directive once it is moved up, as HPC501's afterword: "" when
    nothing."""
    d = next((d for d in ctx.parsed.directives if d.line == line), None)
    if d is None:
        return ""
    if d.value.startswith("~") and sbatch_long_option(SBATCH_SHORT.get(d.flag, d.flag)) in \
            ("--output", "--error", "--chdir", "--input"):
        return " (and write the path out in full there: sbatch does not expand ~ in #SBATCH lines)"
    ref = next((m for m in _DIRECTIVE_REF.finditer(d.value) if not m.group(0)[1:].isdigit()), None)
    if ref is None or not _DIRECTIVE_REF.search(_unquoted_text(ctx.parsed.lines[line - 1])):
        return ""
    return (f" (and write the value itself there: #SBATCH lines are not read by the shell, so {ref.group(0)} is not "
            "expanded)")


def _reported_value(message: str) -> str:
    """The value a job model's message quotes at its start (``'$HOME/x': #SBATCH lines are …``)."""
    head = message.split(": #SBATCH lines", 1)[0]
    return head[1:-1] if len(head) > 1 and head[0] == head[-1] and head[0] in "'\"" else head


def _unquoted_text(line: str) -> str:
    """An #SBATCH line without what bash would keep literal: single-quoted text and backslash-escaped characters."""
    return re.sub(r"'[^']*'|\\.", "", line)


def _job_rule(code: str) -> Any:
    def check(ctx: Context) -> Iterator[Any]:
        yield from job_findings(ctx).get(code, [])
    check.__name__ = f"_job_{code}"
    return check


_job_rule_specs = [
    ("HPC301", "bad-time-format", "error", "the --time limit is not in a format Slurm reads",
     "sbatch rejects the job (or, for a bare number, reads minutes where hours were meant).",
     "Write M, M:S, H:M:S, D-H, D-H:M or D-H:M:S, e.g. --time=01:30:00 or --time=2-00:00:00.", (12,),
     "#SBATCH --time=2h\n", "#SBATCH --time=02:00:00\n"),
    ("HPC302", "bad-memory-request", "error", "a memory request with a bad unit, or two memory options at once",
     "sbatch rejects units such as Gi or GiB (16GB and 16gb are fine), fractions such as 1.5G, and --mem, "
     "--mem-per-cpu and --mem-per-gpu exclude each other: the submission fails.",
     "Use a whole number with K, M, G or T, optionally followed by B (16G or 16GB), and only one of the three "
     "memory options.", (12,),
     "#SBATCH --mem=16GiB\n", "#SBATCH --mem=16G\n"),
    ("HPC303", "cpus-per-gpu-with-cpus-per-task", "error", "--cpus-per-gpu together with --cpus-per-task",
     "Slurm refuses the combination: the job is rejected at submission.",
     "Keep one: --cpus-per-task for CPUs per process, or --cpus-per-gpu.", (14,),
     "#SBATCH --gres=gpu:2\n#SBATCH --cpus-per-task=8\n#SBATCH --cpus-per-gpu=4\n",
     "#SBATCH --gres=gpu:2\n#SBATCH --cpus-per-gpu=4\n"),
    ("HPC304", "bad-array-spec", "error", "the --array value is not an index specification",
     "sbatch rejects the job.", "Write indexes like 0-15, 1,3,5, 0-15:4, optionally with %N to limit concurrency: 0-15%4.",
     (12,), "#SBATCH --array=1..10\n", "#SBATCH --array=1-10\n"),
    ("HPC305", "unexpanded-directive-value", "error", "an #SBATCH value uses $VARIABLE or ~, which sbatch does not expand",
     "#SBATCH lines are read by sbatch, not by the shell: --output=$HOME/logs/x.out names a folder literally "
     "called '$HOME' under the submission folder, which does not exist, so the log is lost. The same holds for "
     "every option: "
     "--dependency=afterok:$JOB is refused, --export=ALL,DATA=$HOME/data hands the job the text '$HOME/data'.",
     "Use a fixed path or sbatch's patterns (%u user, %x job name, %j job id), e.g. --output=logs/%x-%j.out; give "
     "an option whose value the shell must compute on the sbatch command line (sbatch --dependency=afterok:$JOB).",
     (12, 13), "#SBATCH --output=$HOME/logs/%j.out\n", "#SBATCH --output=logs/%x-%j.out\n"),
    ("HPC306", "job-name-with-spaces", "warning", "the job name contains spaces",
     "The name is used in %x output patterns and by squeue/sacct: spaces make file names awkward and break scripts "
     "that parse those listings.", "Use - or _ instead of spaces.", (),
     '#SBATCH --job-name="my training run"\n', "#SBATCH --job-name=my-training-run\n"),
    ("HPC307", "inconsistent-gpu-request", "error", "the GPU request contradicts itself",
     "GPUs in total that the GPUs per node and the node count cannot make (--gpus=4 at 2 per node on one node, "
     "--gpus=3 at 2 per node), or a GPU type without a count, is rejected or gives a different allocation than "
     "intended. So do --gres=gpu:N and --gpus-per-node=M together: sbatch sends both as GPUs per node, "
     "--gpus-per-node first and --gres after it, and Slurm keeps the later count of the same GPU type (its "
     "gres_job_state_validate), so each node gets the --gres count, whichever line comes first; a type on one and "
     "not on the other makes Slurm refuse the job (\"Invalid GRES specification (with and without type "
     "identification)\"), and two different types are both asked for on every node.",
     "Ask for GPUs one way: --gres=gpu[:type]:N or --gpus-per-node=[type:]N per node (or --gpus=N in total), or "
     "make the total the nodes × the GPUs per node.",
     (12,), "#SBATCH --nodes=1\n#SBATCH --gres=gpu:2\n#SBATCH --gpus=4\n", "#SBATCH --nodes=1\n#SBATCH --gres=gpu:2\n"),
    ("HPC308", "bad-count", "error", "a node, task or CPU count is not a positive whole number, or the tasks do not fit",
     "sbatch rejects the job, or (ntasks larger than nodes × tasks per node) refuses to place it. With fewer tasks "
     "than nodes it lowers the nodes to the tasks; on one node, --ntasks below --ntasks-per-node wins (the latter is "
     "a maximum), so the job gets fewer tasks than its srun steps or Lightning expect.",
     "Write whole numbers of at least 1, and keep --nodes ≤ --ntasks ≤ --nodes × --ntasks-per-node.", (12,),
     "#SBATCH --nodes=0\n", "#SBATCH --nodes=1\n"),
    ("HPC399", "other-directive-problem", "error", "another #SBATCH value Slurm would reject",
     "sbatch refuses the job at submission (for example an unknown --mail-type).",
     "Correct the value as the message says.", (12,),
     "#SBATCH --mail-type=SOMETIMES\n", "#SBATCH --mail-type=END,FAIL\n"),
]

for _code, _name, _sev, _summary, _why, _fix, _cat, _bad, _good in _job_rule_specs:
    rule(_code, _name, _sev, summary=_summary, why=_why, fix=_fix, catalogue=_cat,
         bad="#!/bin/bash\n" + _bad + "python train.py\n",
         good="#!/bin/bash\n" + _good + "python train.py\n")(_job_rule(_code))


@rule("HPC310", "unreadable-directive", "error",
      summary="an #SBATCH line that sbatch cannot read",
      why="A missing value, a word that is not an option or an open quote makes sbatch stop with an error "
          "(or take the next option as the value). A line after the first command is left to HPC501: sbatch does "
          "not read it at all.",
      fix="Write one option per #SBATCH line as --name=value.",
      catalogue=(12, 13),
      bad="""#!/bin/bash
#SBATCH --partition
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
srun python train.py
""")
def _unreadable(ctx: Context) -> Iterator[Any]:
    # an option typed with a typographic dash: HPC515 says what is wrong with it and fixes it
    typed = {i for i, text in enumerate(ctx.parsed.lines, start=1) if text.startswith("#SBATCH")
             and any(_typographic_option(word) for word in text.split()[1:])}
    # a placeholder with a blank in it (--account=<account name>, --mail-user=[your email]) leaves a word that is no
    # option: HPC536 names the placeholder, the mistake to fix
    split = {cmd.line for cmd in ctx.parsed.lexed.directives if any(" " in p for p in directive_placeholders(cmd))}
    # a line after the first command is one sbatch never reads: HPC501 says so, and where to move it
    first = ctx.parsed.first_command
    late = {cmd.line for cmd in ctx.parsed.lexed.directives if first and cmd.line >= first}
    for line, message in ctx.parsed.problems:
        if line not in typed and line not in split and line not in late:
            yield line, message


@rule("HPC309", "srun-cpus-per-task-not-inherited", "warning",
      summary="srun does not get --cpus-per-task again (Slurm 22.05–23.02 do not pass it on)",
      why="From Slurm 22.05 until 23.11, srun no longer takes --cpus-per-task from the job: each task gets one CPU, "
          "so data loaders and OpenMP threads crawl on a single core.",
      fix="Pass it to the step: srun --cpus-per-task=\"$SLURM_CPUS_PER_TASK\" …, or export "
          "SRUN_CPUS_PER_TASK=\"$SLURM_CPUS_PER_TASK\" before srun. (Not needed from Slurm 23.11: set the profile's "
          "scheduler_version.)",
      catalogue=(14,),
      bad="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
srun --cpus-per-task="$SLURM_CPUS_PER_TASK" python train.py
""")
def _srun_cpus(ctx: Context) -> Iterator[Any]:
    if ctx.profile is not None and not ctx.profile.srun_needs_cpus_per_task():
        return
    found = list(_steps_without_cpus(ctx))
    for k, (line, had, option, fix) in enumerate(found):
        if k == 0:
            many = (f"; one export SRUN_CPUS_PER_TASK=\"$SLURM_CPUS_PER_TASK\" before it covers all {len(found)} "
                    "steps") if len(found) > 1 else ""
            yield (line, f"{had} but srun on Slurm 22.05–23.02 gives each task one CPU; pass {option} to srun (or "
                         f"export SRUN_CPUS_PER_TASK){many}" + _UNKNOWN_VERSION[ctx.profile is None], fix)
        else:  # said once in full: the steps after the first point back to it
            yield (line, f"as on line {found[0][0]}, srun gives each task one CPU here on Slurm 22.05–23.02; pass "
                         f"{option} to srun (or export SRUN_CPUS_PER_TASK)", fix)


def _steps_without_cpus(ctx: Context) -> Iterator[tuple[int, str, str, Any]]:
    """HPC309's steps: ``(line, what the job has, the option to pass, the fix)``."""
    het = heterogeneous(ctx)
    for step in steps(ctx):
        srun = step.chain.srun
        if srun is None or srun.cpus_per_task is not None:
            continue
        cpus = ctx.job.cpus_per_task if in_job_component(ctx, step) else _components_cpus(ctx, step)
        if not isinstance(cpus, int) or cpus <= 1:
            continue
        if ctx.parsed.variable("SRUN_CPUS_PER_TASK", step.line) or any(n == "SRUN_CPUS_PER_TASK" for n, _ in step.env):
            continue
        own = [str(e).partition("=")[0] for e in srun.extra]
        if "--cpus-per-gpu" in own or "--overlap" in own or _is_monitor(step) or _quick_tool(step):
            continue  # sized by GPU (srun refuses that with --cpus-per-task); a monitor, shell or one-CPU tool
        over = _step_tasks_over_job(ctx, step)
        if over is not None:  # more tasks than the job's: each gets its share of the job's CPUs
            total = _job_cpus(ctx)[2]  # type: ignore[index]  # known: the step was measured against it
            if ctx.profile is None or ctx.profile.version_tuple() is None or over > total or total // over <= 1:
                continue  # HPC322's (the step may not start), or no CPUs to share out
            cpus, had = total // over, f"srun -n {over} shares the job's {total} CPUs, {total // over} a task,"
            written = f"--cpus-per-task={cpus}"
        else:
            had = f"the job has --cpus-per-task={cpus}"
            # the job's own count, as sbatch -c 4 job.sh (which overrides the #SBATCH line) sets it
            written = '--cpus-per-task="$SLURM_CPUS_PER_TASK"'
        # no fix in a heterogeneous job (its components may ask for different counts), nor for a step run in the
        # background (srun … &, srun … | tee log &, ( srun … ) &) or with --exact: one of several sharing the
        # job's CPUs, which would then wait for each other
        shared = het or step.command.joined_by == "&" or "--exact" in own \
            or any(b.step.line == step.line for b in background_steps(ctx))
        # written in after "srun" alone: the rest of the line stays exactly as it was
        yield step.line, had, f"--cpus-per-task={cpus}", None if shared else _insert_after_srun(ctx, step, written)


#: what HPC309 adds when no profile says which Slurm the site runs: how to say it, and so silence the warning
_UNKNOWN_VERSION = ("", "; without a cluster profile the Slurm version is not known: a profile whose "
                        "scheduler_version is 23.11 or later leaves this out")

#: programs a step may run on one CPU: a look at the nodes, not the job's work
_QUICK_TOOLS = frozenset({"hostname", "date", "echo", "printenv", "env", "true", "uname", "nproc", "free", "df",
                          "mkdir", "rm", "cp", "ls", "touch", "sleep"})
#: and the tools that put files in place on each node, one stream each, however long they take (Charliecloud's
#: ch-fromhost copies the host's GPU libraries into an image, ch-tar2dir and ch-convert unpack one)
_ONE_CPU_TOOLS = _QUICK_TOOLS | frozenset({"mv", "ln", "cat", "chmod", "tar", "rsync", "ch-fromhost", "ch-tar2dir",
                                           "ch-convert"})


def _quick_tool(step: Any) -> bool:
    """A step that runs a quick tool (srun hostname, srun mkdir -p "$TMPDIR/run") or one that copies files into place
    (srun ch-fromhost --nvidia IMG), which one CPU suits."""
    program = [str(w) for w in step.chain.program]
    if program[:1] in (["$@"], ["$*"], ['"$@"']):
        return True  # a function's srun of what its caller names (pernode() { srun -N2 "$@"; }): unknown here
    return step.chain.container is None and step.chain.launcher is None and bool(program) \
        and program[0].rsplit("/", 1)[-1] in _ONE_CPU_TOOLS


def _components_cpus(ctx: Context, step: Any) -> int | None:
    """The --cpus-per-task every component of a heterogeneous job's step asks for, when they all ask for
    the same number (``srun --het-group=0,1`` over two components of -c 32), else None."""
    groups = het_groups(step) or ""
    wanted: set[int] = set()
    for part in groups.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not is_number(lo) or (dash and not is_number(hi)):
            return None
        wanted.update(range(int(lo), int(hi if dash else lo) + 1))
    values = set()
    for k in wanted:
        found = None
        for d in ctx.parsed.directives:
            if d.applied and d.field == "cpus_per_task" and d.component == k:
                found = d.value
        values.add(found)
    if len(values) != 1:
        return None
    value = values.pop()
    return int(value) if isinstance(value, str) and is_number(value) else None


def _insert_after_srun(ctx: Context, step: Any, option: str) -> Fix | None:
    """A fix that writes ``option`` right after the step's ``srun`` word and changes nothing else on the
    line (safe whatever follows: ``bash -c "…"``, ``$CMD``, redirections)."""
    words = step.command.words
    srun = next((w for w in words if str(w.value) == "srun" or str(w.value).endswith("/srun")), None)
    if srun is None or "\n" in srun.raw or srun.line > len(ctx.parsed.lines):
        return None
    line = ctx.parsed.lines[srun.line - 1]
    at = srun.col - 1 + len(srun.raw)
    if line[srun.col - 1:at] != srun.raw:
        return None
    return Fix(f"pass {option} to srun", srun.line, srun.line, text=f"{line[:at]} {option}{line[at:]}")


def _job_cpus(ctx: Context) -> tuple[int, int, int] | None:
    """(tasks, CPUs per task, CPUs) the job is given, when its #SBATCH lines fix them: no --exclusive and no
    partition the profile says gives whole nodes (the whole node either way), no --overcommit, no --cpus-per-gpu or
    --mincpus, and no GPUs without --cpus-per-task on a partition whose def_cpus_per_gpu the profile gives (CPUs
    counted another way), not heterogeneous. Without --ntasks or --ntasks-per-node, sbatch's default of one task per
    node, for a one-node job (:func:`_default_tasks`). --mem=0 (all of a node's memory) does not give the job the
    node's CPUs."""
    job = ctx.job
    per_task = job.cpus_per_task if job.cpus_per_task is not None else 1
    if not isinstance(per_task, int) or job.exclusive or job.cpus_per_gpu is not None \
            or heterogeneous(ctx) or any(d.applied and d.flag in ("-O", "--overcommit", "--mincpus")
                                         for d in ctx.parsed.directives) \
            or _on_whole_nodes(ctx) or _cpus_by_gpu(ctx) != "none":
        return None
    tasks = job_tasks(ctx)
    if tasks is None:
        tasks = _default_tasks(ctx)
    if tasks is None:
        return None
    return tasks, per_task, tasks * per_task


#: #SBATCH options that set or change how many tasks the job has (a task count, or tasks by the nodes' CPUs)
_TASK_OPTIONS = re.compile(r"(?:^|\s)(?:-n|--ntasks\b|--tasks-per-node\b|--ntasks-per-\w+)")


def _default_tasks(ctx: Context) -> int | None:
    """The tasks of a one-node job whose #SBATCH lines set no task count: sbatch's documented default, one task per
    node, so 1 (--nodes=1, or no --nodes where nothing asks for more: no GPUs in total, which Slurm may spread over
    nodes). None when a line names a task count in any form (also one this reader leaves aside, or
    --ntasks-per-core/-socket/-gpu, which count tasks from the nodes), and for a job of several nodes: one task (and
    often one CPU) on each of several nodes is nobody's plan, such a job is written for a site that hands out
    whole nodes (NERSC's srun -n 64 -c 2 on -N 2), where its steps may use every CPU of them."""
    return cached(ctx, "default_tasks", lambda: _default_tasks_now(ctx))


def _default_tasks_now(ctx: Context) -> int | None:
    job = ctx.job
    first = ctx.parsed.first_command
    directives = [text for number, text in enumerate(ctx.parsed.lines, start=1)
                  if text.startswith("#SBATCH") and (not first or number < first)]
    if job.ntasks is not None or job.ntasks_per_node is not None \
            or any(_TASK_OPTIONS.search(text[len("#SBATCH"):]) for text in directives):
        return None
    if job.nodes is None:
        spread = any(d.applied and d.field in ("gpus", "gpus_per_task") for d in ctx.parsed.directives)
        return 1 if not spread and job_nodes(ctx) == 1 else None
    span = node_range(job.nodes)
    return 1 if span is not None and span[1] == 1 else None


def _asks_gpus(ctx: Context) -> bool:
    """Whether an #SBATCH line asks for GPUs (--gres=gpu…, --gpus, --gpus-per-node/-task/-socket, --tres-per-task)."""
    return any(d.applied and (d.field in ("gpus", "gpus_per_node", "gpus_per_task")
                              or (d.flag.startswith(("--gres", "--tres", "--gpus")) and "gpu" in str(d.value).lower()))
               for d in ctx.parsed.directives)


def _cpus_by_gpu(ctx: Context) -> str:
    """How a job gets CPUs for its GPUs without --cpus-per-task: "none" when it asks for no GPUs, sets
    --cpus-per-task, or the profile's partition for it has no def_cpus_per_gpu (the site sets no DefCpuPerGPU);
    "default" when it has one (slurm.conf: used only when the job sets neither --cpus-per-task nor --cpus-per-gpu);
    "unknown" without a profile (or one that does not know the job's partition), when the job's task count is left
    to Slurm. A job that names its tasks keeps its reading without a profile, as before."""
    job = ctx.job
    if job.cpus_per_task is not None or not _asks_gpus(ctx):
        return "none"
    part = ctx.profile.entry_for(job) if ctx.profile is not None else None
    if part is not None:
        return "default" if part.def_cpus_per_gpu is not None else "none"
    return "none" if job_tasks(ctx) is not None else "unknown"


def _on_whole_nodes(ctx: Context) -> bool:
    """Whether the job runs on a partition the profile says gives every job whole nodes (``whole_nodes``:
    Slurm's OverSubscribe=EXCLUSIVE): its steps may then use every CPU of the node, as with --exclusive."""
    if ctx.profile is None:
        return False
    names = [n.strip() for n in str(ctx.job.partition or "").split(",") if n.strip()]
    if names:
        return any(p.name in names and p.whole_nodes is True for p in ctx.profile.partitions
                   if hasattr(p, "whole_nodes"))
    part = ctx.profile.entry_for(ctx.job)
    return part is not None and part.whole_nodes is True


def _step_tasks_over_job(ctx: Context, step: Any) -> int | None:
    """The task count an srun step asks for with -n/--ntasks when it is more than the job's, else None."""
    srun = step.chain.srun
    found = _job_cpus(ctx)
    if srun is None or srun.ntasks is None or found is None:
        return None
    n = as_int(ctx, srun.ntasks, step.line)
    return n if n is not None and n > found[0] else None


def _cpus_by_cores(ctx: Context, srun: Any, tasks: int, per_task: int, n: int, each: int) -> tuple[int, int, str]:
    """``(CPUs the job holds, CPUs the step needs, what the cores changed for the message)``, for a step of ``n``
    tasks of ``each`` CPUs in a job of ``tasks`` × ``per_task`` CPUs, as Slurm hands out CPUs: whole cores. Threads
    per core are the profile's (its partition's ``threads_per_core``, :func:`threads_per_core`); where it does not say
    them they may be 2, so a count that fits with two is not reported. A job of one CPU per core
    (--threads-per-core=1, --hint=nomultithread) holds a core for each CPU it asks for; its steps keep to one thread
    per core where the job's --threads-per-core says so (SLURM_THREADS_PER_CORE, sbatch(1)) or the step's own
    options do: each CPU they ask for is a core. Otherwise a task's odd CPU count gets one more where cores have two
    threads. A step with --ntasks-per-core (its own, or the job's, which srun inherits: sbatch(1)) puts at most that
    many of its tasks on a core, so where the profile says the cores have more threads than those tasks use, it
    needs whole cores for them (:func:`_cores_for_tasks`)."""
    asked = n * each
    known = threads_per_core(ctx)
    threads = known or 2  # unknown: maybe two, which holds the most
    job_one = one_thread_per_core(ctx.job.extra_directives) is True
    own = one_thread_per_core(srun.extra)
    step_one = own if own is not None else one_thread_per_core(ctx.job.extra_directives, hints=False) is True
    if job_one and step_one:  # counted in cores, one CPU of each
        return tasks * per_task, asked, (" (one thread per core, as the job and the step ask: one core for each "
                                         "CPU)")
    if job_one:  # whole cores, each of whose threads the step may use
        return tasks * per_task * threads, asked, ""
    held = tasks * -(-per_task // threads) * threads
    if step_one and known and known > 1:  # the step alone keeps to one thread per core: each CPU takes a core
        return held, asked * known, (f" (with one thread per core, as the step's own options ask, each of its "
                                     f"CPUs takes a core of {known} threads: {asked * known} of the job's CPUs)")
    step_per_core = ntasks_per_core(srun.extra)
    per_core = step_per_core or ntasks_per_core(ctx.job.extra_directives)
    if per_core and known and known > 1:
        cores = _cores_for_tasks(n, each, per_core, known)
        if cores * known > asked:
            whose = "the step's own," if step_per_core else "the job's, which srun inherits,"
            return held, cores * known, (f" (with --ntasks-per-core={per_core}, {whose} a core takes at most "
                                         f"{per_core} of its tasks: {n} tasks of {each} CPU{'s' if each > 1 else ''} "
                                         f"take {cores} cores of {known} threads, {cores * known} of the job's "
                                         f"CPUs)")
    return held, asked, ""


def _cores_for_tasks(n: int, each: int, per_core: int, threads: int) -> int:
    """The cores ``n`` tasks of ``each`` CPUs take with --ntasks-per-core=``per_core`` on cores of ``threads``
    threads: a core gives them at most ``per_core`` × ``each`` of its threads (the CPUs of a core Slurm lets such
    a job use), and with one task per core each task takes whole cores of its own."""
    usable = min(threads, per_core * each)
    if per_core == 1:
        return n * -(-each // usable)
    return -(-(n * each) // usable)


@rule("HPC322", "step-asks-for-more-cpus-than-the-job", "error",
      summary="srun -n N starts more tasks than the job asked for, and the CPUs they need are more than the job has",
      why="A step cannot use more CPUs than the job's allocation: the job's #SBATCH --ntasks and --cpus-per-task "
          "fix how many it gets. srun -n 4 in a job of --ntasks=1 --cpus-per-task=8 asks for 4 tasks; each takes "
          "the job's --cpus-per-task (23.11 and later, and 21.08 and earlier), so the step wants 32 CPUs of 8 and "
          "srun stops with "
          "'Unable to create step … More processors requested than permitted'. (Slurm 22.05–23.02 give each such "
          "task one CPU instead. Slurm hands out whole cores, so on nodes with two threads a core a task of one CPU "
          "holds two, and a step that fits in those is not reported; a profile whose partition says its "
          "threads_per_core is 1 makes the count exact. With --threads-per-core=1 the job holds a core for each CPU "
          "it asks for and its steps, which take that value from SLURM_THREADS_PER_CORE, use one CPU of each: the "
          "count is exact too; a step that alone asks for one thread per core, with srun --hint=nomultithread or "
          "--threads-per-core=1, needs a core for each of its CPUs where the profile says the cores have two "
          "threads; so does a step of one-CPU tasks with --ntasks-per-core=1, its own or the job's, which srun "
          "inherits (sbatch(1)): a core takes one of its tasks.) A job that sets neither --ntasks nor "
          "--ntasks-per-node has sbatch's default of one task per node, with --cpus-per-task CPUs (1 when not "
          "given): srun --ntasks=4 --cpus-per-task=8 in a job of --nodes=1 alone stops the same way. (A job of "
          "several nodes without a task count is left alone: it is written for sites that hand out whole nodes, "
          "where a step may use all of them, as a one-node job there may; --exclusive says so.) The job's "
          "count is not known, and nothing is reported, with --exclusive or on a partition the profile says gives "
          "whole nodes (--mem=0 asks for a node's memory, not its CPUs), with --cpus-per-gpu, --mincpus or "
          "--overcommit, or with GPUs but no --cpus-per-task where the partition gives CPUs per GPU "
          "(DefCpuPerGPU, the profile's def_cpus_per_gpu; without a profile this is not known for a job that "
          "leaves its task count to Slurm). A step sized by its GPUs (srun --cpus-per-gpu) is not counted.",
      fix="Ask the job for the tasks the step starts (#SBATCH --ntasks=4 --cpus-per-task=2), or give each task its "
          "share of the job's CPUs: srun -n 4 --cpus-per-task=2 ….",
      bad="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:4
srun -n 4 apptainer exec --nv img_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=2
#SBATCH --gres=gpu:4
srun --cpus-per-task=2 apptainer exec --nv img_2.3.sif python train.py
""")
def _step_outgrows_job(ctx: Context) -> Iterator[Any]:
    version = ctx.profile.version_tuple() if ctx.profile is not None else None
    for step in steps(ctx):
        n = _step_tasks_over_job(ctx, step)
        if n is None:
            continue
        tasks, per_task, cpus = _job_cpus(ctx)  # type: ignore[misc]  # known: the step was measured against it
        srun = step.chain.srun
        if any(str(e).partition("=")[0] == "--cpus-per-gpu" for e in srun.extra):
            continue  # the step's CPUs follow its GPUs (srun --gpus-per-task=1 --cpus-per-gpu=8): not counted here
        own = as_int(ctx, srun.cpus_per_task, step.line) if srun.cpus_per_task is not None else None
        inherits = version is None or not (22, 5) <= version < _CPUS_INHERITED_SINCE  # 22.05–23.02 do not
        each = own if own is not None else (per_task if inherits else 1)
        held, need, per_core = _cpus_by_cores(ctx, srun, tasks, per_task, n, each)
        if need <= held:
            continue
        job = f"the job's {tasks} task{'s' if tasks > 1 else ''}" + (f" × {per_task} CPUs" if per_task > 1 else "")
        default, aside = "", ""
        if job_tasks(ctx) is None:  # no task count: sbatch's default of one task per node (a one-node job here)
            default = (f"it sets no --ntasks or --ntasks-per-node, so sbatch gives it its default of one task, with "
                       f"{per_task} CPU{'s' if per_task > 1 else ''} (--cpus-per-task); ")
            aside = (" (on a site that gives every job a whole node the step may use all of it: add --exclusive "
                     "to say so)")
        if own is None and per_task > 1:
            how = (f"srun gives each task the job's --cpus-per-task={per_task} (every Slurm but 22.05–23.02, which "
                   f"give each task one CPU), so the step asks for {n * per_task} CPUs of the job's {cpus}")
        else:
            how = f"the step asks for {n * each} CPUs of the job's {cpus}"
        how += per_core
        share = cpus // n
        hint = f"or give each task its share (srun -n {n} --cpus-per-task={share})" if share >= 1 \
            else "or start fewer tasks"
        fix = None
        if own is None and share >= 1 and step.command.joined_by != "&":
            fix = _insert_after_srun(ctx, step, f"--cpus-per-task={share}")
        yield (step.line, f"srun -n {n} starts more tasks than {job}: {default}{how}, and srun stops with 'More "
                          f"processors requested than permitted'; ask the job for them (#SBATCH --ntasks={n}) "
                          f"{hint}{aside}", fix)


#: a count of the CPUs the batch shell has on its node: $(nproc), $SLURM_CPUS_ON_NODE, $SLURM_JOB_CPUS_PER_NODE
_NODE_CPU_COUNT = re.compile(r"\$\(\s*nproc\s*\)|`\s*nproc\s*`|\$\{?SLURM_(?:CPUS_ON_NODE|JOB_CPUS_PER_NODE)\}?")


@rule("HPC323", "more-threads-than-cpus", "warning",
      summary="OMP_NUM_THREADS (or MKL_NUM_THREADS) is set above the CPUs each task has (--cpus-per-task)",
      why="Slurm confines each task to the CPUs it asked for (its cgroup, and the CPU binding of srun): with "
          "--cpus-per-task=8 and OMP_NUM_THREADS=32, 32 threads take turns on 8 CPUs. OpenMP and MKL code run much "
          "slower oversubscribed (threads spin waiting for each other), and the job looks busy while it crawls. "
          "OMP_NUM_THREADS=$(nproc) (or $SLURM_CPUS_ON_NODE) in the batch shell of a job of several tasks per node "
          "does the same: the batch shell has all the job's CPUs on its node, so every task starts that many.",
      fix="Follow the job's count: export OMP_NUM_THREADS=\"$SLURM_CPUS_PER_TASK\" (or ask for as many CPUs as "
          "threads: --cpus-per-task=32).",
      bad="""#!/bin/bash
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=8
export OMP_NUM_THREADS=32
srun --cpus-per-task=8 ./solver
""",
      good="""#!/bin/bash
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=8
export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"
srun --cpus-per-task=8 ./solver
""")
def _more_threads_than_cpus(ctx: Context) -> Iterator[Any]:
    cpus = ctx.job.cpus_per_task
    if not isinstance(cpus, int) or ctx.job.exclusive or heterogeneous(ctx):
        return  # no count of the job's own (or the whole node): nothing to compare with
    per_node = ctx.job.ntasks_per_node if isinstance(ctx.job.ntasks_per_node, int) else \
        ctx.job.ntasks if isinstance(ctx.job.ntasks, int) and ctx.job.nodes in (1, "1") else 0
    for var in ctx.parsed.variables:
        value = str(var.value).strip("'\"")
        if var.name not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") or not var.exported:
            continue
        if is_number(value) and int(value) > cpus:
            yield (var.line, f"{var.name}={value} but each task has {cpus} CPU{'s' if cpus > 1 else ''} "
                             f"(--cpus-per-task={cpus}): {value} threads take turns on {cpus}, and oversubscribed "
                             f"OpenMP code crawls; export {var.name}=\"$SLURM_CPUS_PER_TASK\"")
        elif _NODE_CPU_COUNT.fullmatch(value) and per_node > 1:
            # the batch shell counts every CPU the job has on its node, not one task's
            yield (var.line, f"{var.name}={value} is counted by the batch shell, which has all the job's CPUs on "
                             f"its node ({per_node} tasks × {cpus}), so each of the {per_node} tasks starts that "
                             f"many threads on its {cpus} CPU{'s' if cpus > 1 else ''}; export "
                             f"{var.name}=\"$SLURM_CPUS_PER_TASK\"")


@rule("HPC318", "array-tasks-share-a-log", "warning",
      summary="a job array writes every task's output to the same file",
      why="An --output (or --error) pattern without %a, %j or %J names one file for all tasks: they write over each "
          "other and the log of a failed task is lost. (%A alone is the array's id, the same for every task.) An "
          "array run one task at a time (--array=1-30%1) with --open-mode=append keeps one log of the chain, on "
          "purpose, and is not reported.",
      fix="Put the task in the name: --output=%x-%A_%a.out.",
      bad="""#!/bin/bash
#SBATCH --array=0-9
#SBATCH --output=sweep.log
python train.py --task "$SLURM_ARRAY_TASK_ID"
""",
      good="""#!/bin/bash
#SBATCH --array=0-9
#SBATCH --output=sweep_%A_%a.log
python train.py --task "$SLURM_ARRAY_TASK_ID"
""")
def _array_shared_log(ctx: Context) -> Iterator[Any]:
    ids = array_task_ids(ctx.job.array) if isinstance(ctx.job.array, str) and ctx.job.array else None
    if not ctx.job.array or (ids is not None and len(ids) < 2):
        return  # no array, or an array of one task: nothing to write over
    if str(ctx.job.array).endswith("%1") and any(d.applied and d.flag == "--open-mode" and d.value == "append"
                                                for d in ctx.parsed.directives):
        return  # one task at a time, each appending: one log of the chain, on purpose
    for name in ("output", "error"):
        pattern = str(getattr(ctx.job, name) or "")
        if not pattern or pattern == "/dev/null" or re.search(r"%(?:\d*)[ajJ]", pattern) or "$" in pattern:
            continue  # ($SLURM_ARRAY_TASK_ID there is HPC305's: sbatch writes it as it stands, and %a is the fix)
        yield (ctx.parsed.directive_line(name), f"--{name}={pattern} is the same file for every task of the array: "
                                                "they write over each other; add %a (e.g. "
                                                f"--{name}={_with_task(pattern)})")


def _with_task(pattern: str) -> str:
    """``pattern`` with the array task in its name (sweep.log → sweep_%A_%a.log)."""
    head, dot, ext = pattern.rpartition(".")
    if dot and "/" not in ext:
        return f"{head}{'_%a' if '%A' in head else '_%A_%a'}.{ext}"
    return pattern + ("_%a" if "%A" in pattern else "_%A_%a")


#: a time limit in Slurm's M:S form (minutes:seconds) of under five minutes: 1:30, 2:00, 0:45
_MINUTES_SECONDS = re.compile(r"([0-4]):([0-5][0-9])")


#: a queue or a comment that says the job is a short test (where --time=2:00 means two minutes)
_SHORT_TEST = re.compile(r"(?i)debug|test|devel|short|quick|smoke|interactive")


#: commands that look at the node or set up the shell and end within seconds: a job that runs nothing else (a GPU
#: node's nvidia-smi, as in the Alliance's documentation) is a check, for which a limit of minutes is meant
_DIAGNOSTICS = _QUICK_TOOLS | frozenset({"nvidia-smi", "rocm-smi", "lscpu", "lspci", "whoami", "id", "pwd", "printf",
                                         "cat", "cd", "export", "set", "unset", "module", "ml", "source", "."})


def _job_programs(ctx: Context) -> Iterator[tuple[list[str], bool]]:
    """``(words, whether it runs in a container or under a launcher)`` for each program the job runs: a step's
    program (past srun, the container and its options), the batch shell's commands, and those of ``bash -c '…'``.
    A container run without a program (``apptainer run img.sif``) is given as its own words."""
    launches = {s.line: s for s in steps(ctx)}
    for cmd in _simple_commands(ctx.parsed.lexed.code):
        step = None if isinstance(cmd, _Inner) else launches.get(cmd.line)
        program = [str(w) for w in step.chain.program] if step is not None and step.chain.launcher is None else []
        if program:
            yield program, step.chain.container is not None
        else:
            yield run_words([str(v) for v in cmd.argv]), step is not None


def _quick(words: list[str]) -> bool:
    """A command that ends within seconds: one of _DIAGNOSTICS, or a Python one-liner (python -c "import torch…")."""
    name = words[0].rsplit("/", 1)[-1]
    return name in _DIAGNOSTICS or (name.startswith("python") and words[1:2] == ["-c"])


def _runs_only_diagnostics(ctx: Context) -> bool:
    """Whether the job runs at least one command and every one is a quick look at the node (see :func:`_quick`)."""
    seen = False
    for words, _ in _job_programs(ctx):
        if not words or (words[0].rsplit("/", 1)[-1] in ("bash", "sh") and "-c" in words):
            continue  # an assignment, or a bash -c whose own commands follow
        if not _quick(words):
            return False
        seen = True
    return seen


def _runs_long_work(ctx: Context) -> bool:
    """Whether the job runs a program that takes hours as a rule: Python, or any program but a quick one in a
    container or under a launcher (torchrun, mpirun …)."""
    return any(words and not _quick(words) and (contained or words[0].rsplit("/", 1)[-1].startswith("python"))
               for words, contained in _job_programs(ctx))


@rule("HPC320", "time-in-minutes-and-seconds", "warning",
      summary="--time=1:30 is one minute and thirty seconds, not an hour and a half",
      why="Slurm reads a time with one colon as MINUTES:SECONDS (and rounds the seconds up to a minute), so "
          "--time=2:00 gives the job two minutes: it is killed long before a training run ends, after its wait in "
          "the queue. Only limits under five minutes are reported, and not in a job on a debug or test partition or QOS "
          "(or whose --time line's comment says it is a test), nor in one that only runs quick checks such as "
          "nvidia-smi or hostname: a short test job may mean it. --fix writes hours only for a job that runs Python, "
          "a container or a launcher, where hours are clearly meant (a limit 60 times longer may wait longer in the "
          "queue).",
      fix="Write hours as H:MM:SS: --time=1:30:00 for an hour and a half (or --time=90, in minutes).",
      bad="""#!/bin/bash
#SBATCH --time=1:30
python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=1:30:00
python train.py
""")
def _minutes_and_seconds(ctx: Context) -> Iterator[Any]:
    if _runs_only_diagnostics(ctx):
        return  # nvidia-smi, hostname: a look at what the job gets, for which minutes are meant
    long_work = _runs_long_work(ctx)
    for job, line_of in job_components(ctx):
        time = job.time
        m = _MINUTES_SECONDS.fullmatch(time) if isinstance(time, str) else None
        if m is None:
            continue
        line = line_of("time")
        hours = f"{m.group(1)}:{m.group(2)}:00"
        text = ctx.parsed.lines[line - 1]
        said = " ".join(str(v or "") for v in (job.partition, job.qos)) + " " + text.partition(" #")[2]
        if _SHORT_TEST.search(said):
            continue  # a debug queue or a comment saying it is a test: minutes are meant
        # hours are only clearly meant for a training run or a container; a limit 60 times longer may make the job
        # wait far longer in the queue, so a script whose work the linter cannot see is not rewritten
        fix = Fix(f"--time={hours}", line, line, text=text.replace(time, hours, 1)) \
            if long_work and text.count(time) == 1 else None
        yield (line, f"--time={time} is {int(m.group(1))} min {int(m.group(2))} s (Slurm reads M:S); for "
                     f"{int(m.group(1))} h {int(m.group(2))} min write --time={hours}", fix)


#: options sbatch adds up when given again (--mail-type=BEGIN and --mail-type=END mean BEGIN,END); every other one
#: takes the last value (sbatch 22.05 -vv lists the options it read)
_ADDED_UP = frozenset({"--mail-type"})

#: how one option holds what two lines ask for (sbatch keeps only the second): --gres=gpu:1,lscratch:10
_LIST_SEPARATOR = {"--gres": ",", "--licenses": ",", "--dependency": ",", "--nodelist": ",", "--exclude": ",",
                   "--constraint": "&"}


def _meaning(name: str, value: str) -> Any:
    """What sbatch makes of an option's value, where two spellings mean the same (--time=60 and 1:00:00, --nodes=1
    and 1-1); the value as written otherwise, or when it cannot be read."""
    from ..spec.slurm import node_range
    from ..spec.units import parse_time
    try:
        if name == "--time":
            return parse_time(value)
        if name == "--nodes":
            return node_range(int(value) if is_number(value.strip()) else value.strip()) or value
    except ValueError:
        pass
    return value


@rule("HPC330", "option-given-twice", "warning",
      summary="the same #SBATCH option is given twice with different values: sbatch uses the last one",
      why="sbatch reads the #SBATCH lines in order and a later value replaces an earlier one, without a word. In a "
          "long header the line that wins is easy to miss: --partition=parallel near the top and --partition debug "
          "further down send a 72-hour job to the debug queue, whose short limit refuses it or never starts it. Two "
          "--gres (or --constraint) lines do not add up either: only the last is asked for. (--mail-type values do "
          "add up, and each component of a heterogeneous job has its own options.)",
      fix="Keep one line per option, with the value you mean; to ask for two generic resources, list them in one "
          "option (--gres=gpu:1,lscratch:10).",
      bad="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=02:00:00
#SBATCH --partition=debug
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --time=02:00:00
srun python train.py
""")
def _option_given_twice(ctx: Context) -> Iterator[Any]:
    given: dict[tuple[int, str], list[Any]] = {}
    for d in ctx.parsed.directives:
        name = _option_name(d.flag)
        if d.applied and name and name not in _ADDED_UP and SBATCH_OPTIONS.get(name) != "switch":
            given.setdefault((d.component, name), []).append(d)
    for (_, name), found in given.items():
        if len({_meaning(name, d.value) for d in found}) < 2:
            continue  # the same value again (also written another way: --time=60, --time=01:00:00): nothing changes
        last = found[-1]
        earlier = ", ".join(f"{d.value!r} (line {d.line})" for d in found[:-1])
        joined = _LIST_SEPARATOR.get(name)
        both = (f"; to ask for all of them write {name}={joined.join(dict.fromkeys(d.value for d in found))}"
                if joined else "")
        times = "twice" if len(found) == 2 else f"{len(found)} times"
        yield (last.line, f"{name} is given {times} with different values: sbatch uses the last, "
                          f"{last.value!r} (line {last.line}), not {earlier}; keep the line you mean{both}")


@rule("HPC319", "memory-without-unit", "warning",
      summary="--mem (or --mem-per-cpu/--mem-per-gpu) is a number under 100 without a unit, which Slurm reads as megabytes",
      why="Slurm's default unit is megabytes: --mem=32 asks for 32 MB, and the job is killed for running out of "
          "memory as soon as Python loads its libraries (or the site rejects it). From 100 on a value may well "
          "mean megabytes (--mem-per-cpu=500), and a comment that says MB is taken at its word.",
      fix="Write the unit: --mem=32G.",
      bad="""#!/bin/bash
#SBATCH --mem=32
python train.py
""",
      good="""#!/bin/bash
#SBATCH --mem=32G
python train.py
""")
def _memory_without_unit(ctx: Context) -> Iterator[Any]:
    lines = ctx.parsed.lines
    for job, line_of in job_components(ctx):
        for name in ("mem", "mem_per_cpu", "mem_per_gpu"):
            value = str(getattr(job, name) or "").strip()
            line = line_of(name)
            said = lines[line - 1] if 0 < line <= len(lines) else ""
            # under 100 MB is too little for any Python job; more may be meant (--mem-per-cpu=500 # megabytes)
            if is_number(value) and 0 < int(value) < 100 and not re.search(r"(?i)\bMB\b|mega|\bMiB\b", said):
                flag = "--" + name.replace("_", "-")
                yield (line, f"{flag}={value} has no unit, so Slurm reads {value} megabytes; "
                             f"write {flag}={value}G if you meant gigabytes")


@rule("HPC311", "tilde-in-directive", "error",
      summary="an #SBATCH path starts with ~",
      why="sbatch does not expand ~ in directives: the output goes to a directory literally named '~' (which "
          "usually does not exist, so the job fails at start and its log is lost).",
      fix="Write a relative path (relative to the submission directory) or an absolute one; %u is the user name.",
      catalogue=(13,),
      bad="""#!/bin/bash
#SBATCH --output=~/logs/%x-%j.out
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --output=logs/%x-%j.out
srun python train.py
""")
def _tilde(ctx: Context) -> Iterator[Any]:
    for d in ctx.parsed.directives:
        if d.applied and d.field in ("output", "error", "chdir") and str(d.value).startswith("~"):
            yield d.line, (f"{written_option(d.flag, d.value)}: sbatch does not expand ~; write a relative or "
                           "absolute path")


#: options of srun (and salloc) that sbatch does not have: they belong on the srun line of the step
SRUN_ONLY_OPTIONS = frozenset({
    "--mpi", "--cpu-bind", "--label", "--kill-on-bad-exit", "--multi-prog", "--accel-bind", "--pty", "--exact",
    "--overlap", "--whole", "--unbuffered", "--relative", "--task-prolog", "--task-epilog", "--prolog", "--epilog",
    "--bcast", "--send-libs", "--compress", "--preserve-env", "--disable-status", "--quit-on-interrupt",
    "--slurmd-debug", "--het-group", "--jobid", "--external-launcher", "--x11"})
#: those of them that need a value (srun --mpi=pmix); the others are switches, or take a value only after = and do
#: without it (SRUN_ONLY_OPTIONAL_VALUE): srun refuses a value on --pty, --label, --unbuffered, --multi-prog, --exact
#: ("option '--pty' doesn't allow an argument"), so the message shows them bare
SRUN_ONLY_VALUE_OPTIONS = frozenset({
    "--mpi", "--cpu-bind", "--accel-bind", "--relative", "--task-prolog", "--task-epilog", "--prolog", "--epilog",
    "--slurmd-debug", "--het-group", "--jobid"})
#: those that take a value after = or none (srun --help: --compress[=library], --send-libs[=yes|no])
SRUN_ONLY_OPTIONAL_VALUE = frozenset({"--kill-on-bad-exit", "--bcast", "--send-libs", "--compress", "--x11"})


#: sbatch options that site plugins add (SPANK options join sbatch's own): NVIDIA's pyxis (since 0.12) and NERSC's
#: Shifter (--image, --volume, --module); a script written for such a site is not told they are unknown
PLUGIN_SBATCH_OPTIONS = PYXIS_VALUE_OPTIONS | PYXIS_SWITCHES | frozenset({"--image", "--volume", "--module"})


#: sbatch options Slurm has removed, with the option that replaced them ("" for none); sbatch 22.05 refuses each
#: ("unrecognized option"): --workdir became --chdir (removed in 19.05), --share became --oversubscribe (16.05),
#: checkpointing went with its options
REMOVED_SBATCH_OPTIONS = {"--workdir": "--chdir", "--share": "--oversubscribe", "--checkpoint": "",
                          "--checkpoint-dir": ""}


def _spelling_variants(flag: str) -> set[str]:
    """Options one slip away from ``flag``: ``_`` for ``-`` and upper case (as a whole), then one
    character missing, extra, or two neighbours swapped, or its words in another order (--cpu-per-mem for
    --mem-per-cpu). Never a different letter (--cpu-bind is not --gpu-bind, --mpi is not --tmp)."""
    base = "--" + flag[2:].replace("_", "-").lower()
    out = {base}
    body = base[2:]
    parts = body.split("-")
    if 1 < len(parts) <= 4 and all(parts):
        out.update("--" + "-".join(order) for order in itertools.permutations(parts))
    letters = "abcdefghijklmnopqrstuvwxyz-"
    for i in range(len(body) + 1):
        out.update("--" + body[:i] + c + body[i:] for c in letters)   # one missing
        if i < len(body):
            out.add("--" + body[:i] + body[i + 1:])                 # one extra
        if i + 1 < len(body):
            out.add("--" + body[:i] + body[i + 1] + body[i] + body[i + 2:])  # two swapped
    return out


def _unknown_directives(ctx: Context) -> Iterator[tuple[Any, str, str, str]]:
    """Applied directives whose option sbatch does not have: ``(directive, flag, what it is, detail)``
    where what it is is ``srun`` (an srun option; detail: its name), ``separator`` (``--hetjob``: the line between the
    components of a heterogeneous job written as an option), ``ambiguous`` (the beginning of
    several options; detail: them), ``slip`` (detail: the option it is a slip of), ``removed`` (an option Slurm
    has removed; detail: the one that replaced it, or ""), ``glued`` (an option joined to its value by ``-``;
    detail: the option written with ``=``), ``short`` (a short option sbatch does not have) or ``unknown``. An
    alias sbatch keeps (--tasks-per-node) and an unambiguous prefix (--tasks) are options sbatch has
    (HPC317 reports the prefix)."""
    for d in ctx.parsed.directives:
        if not d.applied or d.field or sbatch_option(d.flag) or d.flag in PLUGIN_SBATCH_OPTIONS:
            continue
        flag = d.flag
        if re.fullmatch(r"-[A-Za-z0-9]", flag):
            yield d, flag, "short", ""  # plugins add long options only: sbatch refuses an unknown short one
            continue
        if not flag.startswith("--"):
            yield d, flag, "unknown", ""
            continue
        normal = "--" + flag[2:].replace("_", "-").lower()
        if normal.replace("-", "") in HETJOB_SEPARATORS:
            yield d, flag, "separator", ""  # --hetjob: the separator line written as an option
            continue
        if flag in REMOVED_SBATCH_OPTIONS:
            yield d, flag, "removed", REMOVED_SBATCH_OPTIONS[flag]
            continue
        if normal in SRUN_ONLY_OPTIONS:
            yield d, flag, "srun", normal
            continue
        several = sorted(o for o in SBATCH_OPTIONS if o.startswith(flag))
        if len(flag) > 3 and len(several) > 1:
            yield d, flag, "ambiguous", ", ".join(several)
            continue
        close = sorted({SBATCH_ALIASES.get(o, o) for o in _spelling_variants(flag) if o in SBATCH_OPTIONS})
        glued = _glued_value(flag)
        if len(close) == 1:
            yield d, flag, "slip", close[0]
        elif glued:
            yield d, flag, "glued", glued
        else:
            yield d, flag, "unknown", ""


def _glued_value(flag: str) -> str:
    """``--mem=4G`` for ``--mem-4G``: an option that takes a value, joined to it by ``-`` instead of ``=`` (sbatch
    reads the whole as the name of an option it does not have); "" when ``flag`` is not one. The value must start
    with a digit or hold a colon (``--time-1:00:00``, ``--gres-gpu:1``), which no option name does, so a site's own
    option such as --mail-digest is not taken for --mail=digest."""
    for option in sorted(SBATCH_OPTIONS, key=len, reverse=True):  # the longest first: --mem-per-cpu-4G
        value = flag[len(option) + 1:]
        if flag.startswith(option + "-") and SBATCH_OPTIONS[option] != "switch" and value \
                and (value[0].isdigit() or ":" in value):
            return f"{option}={value}"
    return ""


#: a comment that looks like a directive: ``#WORD --option``
_SENTINEL_LIKE = re.compile(r"^#([A-Za-z]{4,8})[ \t]+-")


def _misspelled_sentinel(word: str) -> bool:
    """``SBTACH``, ``SBACTH``, ``SBATC``, ``sbatch``: a slip of SBATCH (which sbatch reads case and letter exact).
    SBATCH with letters around it (``#xSBATCH``, ``#noSBATCH``) is a directive switched off on purpose."""
    upper = word.upper()
    if word == "SBATCH" or (upper != "SBATCH" and "SBATCH" in upper):
        return False
    import difflib
    return upper == "SBATCH" or sorted(upper) == sorted("SBATCH") or \
        difflib.SequenceMatcher(None, upper, "SBATCH").ratio() >= 0.8


def _option_list(text: str) -> bool:
    """Whether the rest of a directive-like line is options only (``--time=1:00:00``, ``-p gpu``, then perhaps a
    comment), as a directive's is; prose after an option (``#sbatch --dependency=afterok:1 next.sh <- how to``) is a
    comment about sbatch, not a directive."""
    words = text.split()
    for k, word in enumerate(words):
        if word.startswith("#"):
            break
        if not word.startswith("-") and not (k > 0 and re.fullmatch(r"-[A-Za-z]", words[k - 1])):
            return False
    return bool(words)


def _options_set_elsewhere(text: str, live: set[str]) -> bool:
    """Whether every option of a directive-like line (``--partition=general -c 32``) is one the job's live #SBATCH
    lines set too: the line is then a value switched off on purpose, not a directive lost to a typo."""
    words = list(itertools.takewhile(lambda w: not w.startswith("#"), text.split()))
    names = [_option_name(w.partition("=")[0] if w.startswith("--") else w[:2]) for w in words if w.startswith("-")]
    return bool(names) and all(name and name in live for name in names)


@rule("HPC321", "misspelled-sbatch-sentinel", "error",
      summary="a line meant as an #SBATCH directive is misspelled (#SBTACH, #sbatch, SBATCH without its #), so "
              "sbatch ignores it",
      why="sbatch reads only lines that start exactly with #SBATCH; any other spelling is an ordinary comment. The "
          "options on it are silently dropped: the job runs with the default time, memory or account, and nothing "
          "says why. (A space after the # or a second #, as in # SBATCH or ##SBATCH, or letters around the word, as in "
          "#xSBATCH or #noSBATCH, are the usual ways to switch a line off on purpose, and are left alone, as is a "
          "comment whose words after the option are prose. So is a line such as #XBATCH --partition=general whose "
          "options a live #SBATCH line sets as well: it is an earlier choice kept to switch back to, and writing "
          "#SBATCH there would give the option twice.)",
      fix="Write #SBATCH exactly (upper case, no space).",
      bad="""#!/bin/bash
#SBATCH --gres=gpu:1
#SBTACH --time=02:00:00
python train.py
""",
      good="""#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
python train.py
""")
def _sentinel(ctx: Context) -> Iterator[Any]:
    first = first_command_line(ctx.parsed.lexed)
    live = {_option_name(d.flag) for d in ctx.parsed.directives if d.applied}
    for number, text in enumerate(ctx.parsed.lines, start=1):
        if first and number >= first:
            break
        m = _SENTINEL_LIKE.match(text)
        if m and _misspelled_sentinel(m.group(1)) and _option_list(text[m.end(1):]) \
                and not _options_set_elsewhere(text[m.end(1):], live):
            fixed = "#SBATCH" + text[m.end(1):]
            yield (number, f"#{m.group(1)} is not #SBATCH, so sbatch ignores this line and its options; write #SBATCH",
                   Fix("write #SBATCH", number, number, text=fixed))
    for cmd in simple_commands(ctx):
        words = [str(v) for v in cmd.argv]
        if words[:1] == ["SBATCH"] and len(words) > 1 and words[1].startswith("-") and cmd.line == cmd.end_line:
            text = ctx.parsed.lines[cmd.line - 1]
            at = len(text) - len(text.lstrip())
            if first and cmd.line > first:  # with its # back, it would be a directive sbatch ignores (HPC501)
                yield (cmd.line, f"SBATCH {words[1]} has lost its #: bash runs it as a command (SBATCH: command not "
                                 "found); as #SBATCH it must also move above the first command, where sbatch reads "
                                 "directives")
                continue
            yield (cmd.line, f"SBATCH {words[1]} has lost its #: bash runs it as a command (SBATCH: command not "
                             "found), and sbatch reads no #SBATCH line after it; write #SBATCH",
                   Fix("write #SBATCH", cmd.line, cmd.line, text=text[:at] + "#" + text[at:]))


@rule("HPC312", "misspelled-sbatch-option", "error",
      summary="an #SBATCH option sbatch does not have: a slip of one it has, an option Slurm removed, an option "
              "joined to its value by - (--mem-4G), an srun option, or --hetjob for the separator line",
      why="sbatch refuses the whole job at submission (\"unrecognized option\"), and a script that is only "
          "ever submitted by a tool or a pipeline fails far from where the typo is. Options such as --mpi and "
          "--cpu-bind exist only for srun: they belong on the srun line of the step. Old scripts still carry "
          "--workdir (renamed --chdir, and removed in Slurm 19.05), --share (renamed --oversubscribe) or "
          "--checkpoint and --checkpoint-dir (removed with Slurm's checkpointing); --mem-4G is read as the name of "
          "an option, not as --mem with 4G. The components of a heterogeneous job are separated by a line #SBATCH hetjob; "
          "no option says that a job is heterogeneous (#SBATCH --hetjob).",
      fix="Write the option as sbatch spells it (sbatch --help lists them), with = before its value (--mem=4G); "
          "write --chdir for --workdir, --oversubscribe for --share, and remove the --checkpoint lines; move "
          "srun's own options to the srun line (srun --mpi=pmix …); write #SBATCH hetjob as a line of its own "
          "between two components.",
      bad="""#!/bin/bash
#SBATCH --ntask-per-node=1
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --ntasks-per-node=1
srun python train.py
""")
def _misspelled_option(ctx: Context) -> Iterator[Any]:
    one_dash = list(_single_dash_long_options(ctx))
    for d, flag, kind, close in _unknown_directives(ctx):
        if kind == "short" and any(d is written[0] for written in one_dash):
            continue  # -gres=gpu:4: one mistake, a long option with one dash, said once below
        if kind == "srun":
            yield (d.line, f"{flag} is an srun option, not an sbatch one (sbatch refuses the job); pass it to srun "
                           f"on the step's line instead ({_srun_example(close, d.value)})")
            continue
        if kind == "separator":
            where = ("remove this line: the job's own #SBATCH hetjob line already separates its components"
                     if heterogeneous(ctx) else "write a line #SBATCH hetjob between the options of one component "
                                                  "and the next")
            yield (d.line, f"{flag} is not an sbatch option (sbatch refuses the job); a heterogeneous job needs no "
                           f"option, only the separator line: {where}")
            continue
        if kind == "ambiguous":
            yield (d.line, f"{flag} is the beginning of several sbatch options ({close}), so sbatch refuses the job "
                           "as ambiguous; write the option's full name")
            continue
        if kind == "short":
            yield (d.line, f"{flag} is not an sbatch option (sbatch refuses the job: invalid option; site plugins add "
                           "long options only); sbatch --help lists the short ones")
            continue
        if kind == "removed":
            if close:
                yield (d.line, f"{flag} is no longer an sbatch option (Slurm renamed it {close}, and sbatch now "
                               f"refuses the job as an unrecognized option); write {close}",
                       _rename_option(ctx, d.line, flag, close))
            else:
                yield (d.line, f"{flag} is no longer an sbatch option (Slurm removed checkpointing, and sbatch now "
                               "refuses the job as an unrecognized option); remove the line")
            continue
        if kind == "glued":
            yield (d.line, f"{flag} is not an sbatch option (sbatch refuses the job): the value is joined to the "
                           f"option by - instead of =; write {close}", _rename_option(ctx, d.line, flag, close))
            continue
        if kind != "slip":
            continue
        yield (d.line, f"{flag} is not an sbatch option (sbatch refuses the job); did you mean {close}?",
               _rename_option(ctx, d.line, flag, close))
    for d, written, meant in one_dash:
        yield (d.line, f"{written} has one dash, so sbatch reads it as the short option {d.flag} with the value "
                       f"{d.value!r}; write {'--' + written[1:]}", _rename_option(ctx, d.line, written, "--" + written[1:]))


def _srun_example(option: str, value: Any) -> str:
    """How an srun-only ``option`` written as an #SBATCH line goes on the step's line: with its value (``srun
    --mpi=pmix program``, ``=…`` where the line gives none), bare where srun takes it without one (``srun --pty
    program``: srun refuses ``--pty=…``), and --multi-prog before its configuration file, which is srun's program."""
    if option == "--multi-prog":
        return "srun --multi-prog tasks.conf, the file naming each task's program"
    given = value if isinstance(value, str) and value else ""
    if option in SRUN_ONLY_VALUE_OPTIONS:
        return f"srun {option}={given or '…'} program"
    if option in SRUN_ONLY_OPTIONAL_VALUE and given:
        return f"srun {option}={given} program"
    return f"srun {option} program"


def _single_dash_long_options(ctx: Context) -> Iterator[tuple[Any, str, str]]:
    """Directives written with one dash before a long option's name (``-qos=debug``), which sbatch reads as a short
    option and its value (-q with os=debug): ``(directive, as written, the long option meant)``."""
    for d in ctx.parsed.directives:
        if not d.applied or not re.fullmatch(r"-[A-Za-z]", d.flag) or not isinstance(d.value, str):
            continue
        name = (d.flag[1] + d.value).partition("=")[0]
        meant = "--" + name
        if len(name) >= 3 and re.fullmatch(r"[a-z][a-z-]+", name) and (meant in SBATCH_OPTIONS or meant in SBATCH_ALIASES):
            yield d, "-" + name, SBATCH_ALIASES.get(meant, meant) if meant in SBATCH_ALIASES else meant


def _rename_option(ctx: Context, line: int, flag: str, name: str) -> Fix | None:
    """A fix writing ``name`` for the option ``flag`` on directive line ``line`` (None when it is not there)."""
    lines = ctx.parsed.lines
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    pattern = rf"(?<![\w-]){re.escape(flag)}(?![\w-])"
    if not re.search(pattern, text):
        return None
    return Fix(f"write {name}", line, line, text=re.sub(pattern, name, text, count=1))


@rule("HPC313", "unknown-sbatch-option", "info",
      summary="an #SBATCH option that Slurm's sbatch does not have",
      why="Unless a plugin of your site adds it, sbatch refuses the job (\"unrecognized option\").",
      fix="Check the spelling against sbatch --help on your cluster; if the site documents the option, keep it "
          "and suppress this finding (# hpcw: disable=HPC313).",
      bad="""#!/bin/bash
#SBATCH --gpus-on-each-node=2
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --gpus-per-node=2
srun python train.py
""")
def _unknown_option(ctx: Context) -> Iterator[Any]:
    for d, flag, kind, _ in _unknown_directives(ctx):
        if kind == "unknown" and not _typographic_option(flag):   # a typographic dash: HPC515
            yield d.line, f"{flag} is not an option of Slurm's sbatch: fine only if your site adds it; check the spelling"


def _read_directives(ctx: Context) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """``(directive line, its words as sbatch splits them)`` for each #SBATCH line sbatch reads: those before the
    first command (HPC501 reports those after it), and not one whose quotes sbatch cannot read."""
    from ..parse.lexer import directive_words
    first = ctx.parsed.first_command
    for cmd in ctx.parsed.lexed.directives:
        if first and cmd.line >= first:
            continue
        try:
            yield cmd, directive_words(cmd)
        except ParseError:
            continue


@rule("HPC317", "abbreviated-sbatch-option", "info",
      summary="an #SBATCH option written as an abbreviation of its name (or #SBATCH packjob, the old name of hetjob)",
      why="sbatch accepts any unambiguous beginning of an option's name (--tasks is --tasks-per-node, i.e. "
          "--ntasks-per-node), so the job may ask for something else than it reads (--tasks is not --ntasks), "
          "and a later Slurm that adds another option with the same beginning refuses the job as ambiguous. "
          "Likewise sbatch still reads #SBATCH packjob between the components of a heterogeneous job, but warns that "
          "the name is deprecated.",
      fix="Write the option's full name (sbatch --help lists them), and #SBATCH hetjob for packjob.",
      bad="""#!/bin/bash
#SBATCH --tasks=1
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --ntasks-per-node=1
srun python train.py
""")
def _abbreviated_option(ctx: Context) -> Iterator[Any]:
    for cmd, read in _read_directives(ctx):
        words = [w.value for w in read]
        if words == ["packjob"]:
            yield (cmd.line, "#SBATCH packjob is the deprecated name of the separator between the components of a "
                             "heterogeneous job (sbatch warns); write #SBATCH hetjob",
                   _rename_option(ctx, cmd.line, "packjob", "hetjob"))
    for d in ctx.parsed.directives:
        flag = d.flag
        if not d.applied or not flag.startswith("--") or flag in SBATCH_OPTIONS:
            continue  # (a prefix is read into its field too: d.field says which)
        full = sbatch_long_option(flag)
        if not full:
            continue
        name = SBATCH_ALIASES.get(full, full)
        means = f"{full}, i.e. {name}" if name != full else full
        other = "--n" + flag[2:]
        if sbatch_long_option(other) and SBATCH_ALIASES.get(sbatch_long_option(other), sbatch_long_option(other)) != name:
            means += f", not {sbatch_long_option(other)}"
        yield d.line, f"sbatch reads {flag} as {means}; write {name} in full", _rename_option(ctx, d.line, flag, name)


@rule("HPC324", "hash-inside-directive-value", "warning",
      summary="an unquoted # inside an #SBATCH value: sbatch reads the value up to it and the rest of the line as a "
              "comment",
      why="sbatch splits #SBATCH lines itself, and an unquoted, unescaped # anywhere on them starts a comment, also "
          "in the middle of a word (_get_argument in Slurm's sbatch/opt.c). --job-name=exp#3 names the job exp; an "
          "enroot image written the pyxis way, --container-image=nvcr.io#nvidia/pytorch:24.05-py3, becomes "
          "nvcr.io and the pull fails. A # after a blank (#SBATCH --time=1:00:00 # one hour) is a comment on "
          "purpose and left alone, as is one that starts words of prose (--nodes=1# one node, --time=1:00:00#one hour).",
      fix='Quote the value (--container-image="nvcr.io#nvidia/pytorch:24.05-py3") or escape the # as \\#.',
      bad="""#!/bin/bash
#SBATCH --job-name=sweep#3
#SBATCH --gres=gpu:1
python train.py
""",
      good="""#!/bin/bash
#SBATCH --job-name="sweep#3"
#SBATCH --gres=gpu:1
python train.py
""")
def _hash_inside_value(ctx: Context) -> Iterator[Any]:
    for cmd, words in _read_directives(ctx):
        text = cmd.text.split("\n", 1)[0]
        for word in words:
            end = word.col - 1 + len(word.raw)
            if end >= len(text) or text[end] != "#":
                continue
            after = text[end + 1:]
            tail = re.match(r"\S*", after).group(0)
            if not tail or (tail.isalpha() and after[len(tail):].strip()):
                break  # --nodes=1# one node, --time=1:00:00#one hour: a comment written without a blank before it
            cut = re.match(r"\S*", text[word.col - 1:]).group(0)  # the word as the author meant it
            yield (cmd.line, f"sbatch stops reading {cut} at its #: it takes {word.value!r} and reads the rest of the "
                             "line as a comment; quote the value or escape the # (\\#)",
                   _quote_directive_word(ctx, cmd.line, cut, word))
            break  # the rest of the line is a comment to sbatch: one finding per line


def _quote_directive_word(ctx: Context, line: int, cut: str, word: Any) -> Fix | None:
    """A fix writing ``--opt="value#rest"`` for the word ``cut`` (None when it holds quotes or backslashes already,
    whose meaning inside double quotes would change)."""
    if any(c in cut for c in "\"'\\"):
        return None
    text = ctx.parsed.lines[line - 1]
    start = word.col - 1
    if not text.startswith(cut, start):
        return None
    flag, eq, value = cut.partition("=")
    quoted = f'{flag}="{value}"' if eq and flag.startswith("-") else f'"{cut}"'
    return Fix("quote the value", line, line, text=text[:start] + quoted + text[start + len(cut):])


# --------------------------------------------------------------------------------------------
# a fixed job id in #SBATCH --dependency, and a job that submits itself again

#: one job id of a dependency list (``123``, ``123_4``, ``123_*``, ``123+10``): its digits
_DEPENDENCY_JOB_ID = re.compile(r"^(\d+)(?:_(?:\d+|\*))?(?:\+\d+)?$")


def _fixed_dependencies(ctx: Context) -> list[tuple[Any, list[str]]]:
    """The #SBATCH --dependency lines sbatch reads that name job ids as numbers, with those ids: ``afterok:23929``,
    ``afterany:12:13``, the old form ``23929``. ``singleton`` names none; a ``$JOB`` is HPC305's."""
    out = []
    for d in ctx.parsed.directives:
        flag = SBATCH_SHORT.get(d.flag) or sbatch_long_option(d.flag)
        if not d.applied or flag != "--dependency":
            continue
        ids = []
        for item in re.split(r"[,?]", d.value.strip("'\"")):
            kind, colon, rest = item.partition(":")
            for part in (rest.split(":") if colon else [kind]):
                m = _DEPENDENCY_JOB_ID.match(part)
                if m:
                    ids.append(m.group(1))
        if ids:
            out.append((d, ids))
    return out


#: the script's own path as bash knows it: $0, ${0}, $BASH_SOURCE, ${BASH_SOURCE[0]}
_OWN_PATH = re.compile(r"^[\"']?\$(?:0|\{0\}|BASH_SOURCE\b|\{BASH_SOURCE(?:\[0\])?\})[\"']?$")
#: the command the job was submitted with, as scontrol shows it (Command=/path/to/job.sh)
_SHOWN_COMMAND = re.compile(r"scontrol\s+(?:-\w+\s+)*show\s+job.*Command", re.S)
#: a command substitution that runs sbatch: NEXT=$(sbatch --parsable "$0")
_SBATCH_SUBSTITUTION = re.compile(r"\$\(\s*((?:\S*/)?sbatch\s[^()]*)\)|`\s*((?:\S*/)?sbatch\s[^`]*)`")


def _sbatch_calls(ctx: Context) -> Iterator[tuple[int, list[Any], str]]:
    """``(line, words, quote)`` of each sbatch the script runs: as a command (also in a function, loop or if), in a
    command substitution (``NEXT=$(sbatch --parsable "$0")``), or in the handler a trap sets (``trap 'sbatch "$0"'
    USR1``), where ``quote`` is the quote the handler is written in ("" elsewhere). A function a handler calls is
    read where it is written."""
    def calls(code: Any, before: int, quote: str, handler: bool) -> Iterator[tuple[int, list[Any], str]]:
        # before: the lines above the code's first line (those above a trap's handler, whose lines count from 1)
        for cmd in _simple_commands(code):
            if isinstance(cmd, _Inner):
                continue  # a command of a bash -c script: its words are not the batch script's
            if cmd.words and str(cmd.name).rsplit("/", 1)[-1] == "sbatch":
                yield before + cmd.line, list(cmd.words), quote
            for _, word in cmd.assignments:
                for m in _SBATCH_SUBSTITUTION.finditer(word.raw):
                    try:
                        inner = lex_script(m.group(1) or m.group(2)).code
                    except ParseError:
                        continue
                    if inner and inner[0].kind == "simple":
                        yield before + word.line, list(inner[0].words), quote
            if cmd.name == "trap" and not handler and len(cmd.words) > 2:
                word = cmd.words[1]
                opening = word.raw[:1] if word.raw[:1] in "'\"" else ""
                yield from calls(trap_handler_code(cmd), before + word.line - 1, opening, True)
    yield from calls(ctx.parsed.lexed.code, 0, "", False)


def sbatch_command_options(texts: list[str]) -> tuple[list[tuple[str, str | None]], int]:
    """sbatch's options in the words after ``sbatch`` (``texts``, as its shell gives them), as ``(flag, value)`` with
    the flag as written (``-N``, ``--nodes``) and None for a switch, and the index of the first word that is not one
    (the script, or ``len(texts)``)."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(texts):
        text = texts[i]
        if not text.startswith("-") or text == "-":
            break
        flag, eq, value = text.partition("=")
        if not flag.startswith("--") and len(flag) > 2:
            flag, eq, value = flag[:2], "=", text[2:]  # -dafterok:1, -N2: the value is attached
        if not eq and sbatch_option(flag) == "value":
            out.append((flag, texts[i + 1] if i + 1 < len(texts) else ""))
            i += 2
            continue
        out.append((flag, value if eq else None))
        i += 1
    return out, i


def _submitted_script(words: list[Any]) -> tuple[Any, bool] | None:
    """The script word of an ``sbatch`` command, and whether the command line gives its own --dependency (which
    overrides the script's #SBATCH line); None for ``sbatch --wrap`` or no script."""
    options, end = sbatch_command_options([str(w.value) for w in words[1:]])
    longs = {SBATCH_SHORT.get(flag) or sbatch_long_option(flag) for flag, _ in options}
    if "--wrap" in longs or end + 1 >= len(words):
        return None
    return words[end + 1], "--dependency" in longs


def _resubmits_itself(ctx: Context, word: Any, line: int) -> bool:
    """Whether ``word``, the script an sbatch in the job submits, is the job's own script: $0 or BASH_SOURCE (in a
    batch job Slurm's spool copy of it, same text), the command scontrol shows for the job, or a path whose file name
    is the script's own, in the folder the job starts in or the script's own (when the script's path is known)."""
    raw = word.raw
    written = ctx.parsed.resolve_written(raw, line)
    if _OWN_PATH.match(raw) or _OWN_PATH.match(written) or _SHOWN_COMMAND.search(written):
        return True
    own_dir, _, own = ctx.path.replace("\\", "/").rpartition("/")
    folder, _, name = ctx.parsed.resolve(str(word.value), line).rpartition("/")
    return bool(own) and name == own and folder in ("", ".", "$SLURM_SUBMIT_DIR", "${SLURM_SUBMIT_DIR}", own_dir)


def _self_resubmissions(ctx: Context) -> list[tuple[int, str, str]]:
    """``(line, the script word as written, the quote of the trap handler it is in)`` of each sbatch that submits
    the job's own script again without a --dependency of its own on the command line."""
    def make() -> list[tuple[int, str, str]]:
        if "SBATCH_DEPENDENCY" in ctx.parsed.source:
            return []  # the dependency comes from the environment, which overrides the #SBATCH line
        out = []
        for line, words, quote in _sbatch_calls(ctx):
            found = _submitted_script(words)
            if found is not None and not found[1] and _resubmits_itself(ctx, found[0], line):
                out.append((line, found[0].raw, quote))
        return out
    return cached(ctx, "self_resubmissions", make)


@rule("HPC325", "resubmitted-job-keeps-a-fixed-dependency", "warning",
      summary="the job submits its own script again, and the copy's #SBATCH --dependency names a fixed job id, not "
              "the running job",
      why="A copy submitted with sbatch \"$0\", sbatch ${BASH_SOURCE[0]}, the Command scontrol shows for the job, or "
          "the script's own file name (also from a trap's handler: trap 'sbatch \"$0\"' USR1) reads the same #SBATCH "
          "lines, so it waits for the old job the line names, never "
          "for the job that submits it (in a batch job $0 is Slurm's spool copy of the script, "
          "…/slurmd/job123/slurm_script, whose #SBATCH lines are the same). If that old job ended well and slurmctld "
          "still knows it, the copy may start at once, beside the running job and on the same restart files; if it "
          "failed, an afterok copy never starts (DependencyNeverSatisfied). Once it is purged (MinJobAge, 300 s by "
          "default), Slurm 20.x drops the dependency (_parse_dependency_jobid_new adds none for a job it cannot "
          "find) and the copy may start at once, while sites on later releases report sbatch refusing it (\"Job "
          "dependency problem\"), which ends the chain. A dependency given on the sbatch command line (or in "
          "SBATCH_DEPENDENCY) overrides the #SBATCH line and is not reported.",
      fix="Give the resubmission its own dependency on the running job: sbatch --dependency=afterany:$SLURM_JOB_ID "
          "\"$0\" (afterok stops the chain when a link fails), and remove the fixed job id from the #SBATCH line.",
      bad="""#!/bin/bash
#SBATCH --time=24:00:00
#SBATCH --dependency=afterok:23929
sbatch "$0"
srun ./md -restart
""",
      good="""#!/bin/bash
#SBATCH --time=24:00:00
sbatch --dependency=afterany:"$SLURM_JOB_ID" "$0"
srun ./md -restart
""")
def _resubmitted_with_fixed_dependency(ctx: Context) -> Iterator[Any]:
    fixed = _fixed_dependencies(ctx)
    if not fixed:
        return
    d, ids = fixed[0]
    for line, script, quote in _self_resubmissions(ctx):
        text = ctx.parsed.lines[line - 1]
        fix = None
        if len(re.findall(r"(?<![\w/.-])sbatch(?![\w.-])", text)) == 1:
            # inside a double-quoted trap handler, quotes of its own would end the handler's string
            job = "$SLURM_JOB_ID" if quote == '"' else '"$SLURM_JOB_ID"'
            fix = Fix("make the resubmission depend on the running job", line, line,
                      text=re.sub(r"(?<![\w/.-])sbatch(?![\w.-])", f"sbatch --dependency=afterany:{job}", text))
        yield (line, f"sbatch {script} submits this script again, and the copy reads the same #SBATCH "
                     f"--dependency={d.value} (line {d.line}): it waits for job {', '.join(ids)}, not for the job "
                     f"running now; pass --dependency=afterany:$SLURM_JOB_ID on this sbatch line and remove the fixed "
                     f"job id from line {d.line}", fix)


@rule("HPC326", "fixed-job-id-in-dependency", "info",
      summary="#SBATCH --dependency names a job id as a number",
      why="A job id is right for one submission only: the next time the script is submitted, the job it names has "
          "long ended. A failed job leaves an afterok job waiting forever (DependencyNeverSatisfied); one slurmctld "
          "has purged (MinJobAge, 300 s by default) is either dropped from the dependency (Slurm 20.x: the job starts "
          "without waiting) or makes sbatch refuse the job (\"Job dependency problem\", as sites on later releases "
          "report). A job id belongs on the sbatch command line, where the shell can fill it in "
          "(sbatch --dependency=afterok:$JOB job.sh).",
      fix="Remove the line and pass the dependency when you submit: JOB=$(sbatch --parsable first.sh); "
          "sbatch --dependency=afterok:$JOB job.sh.",
      bad="""#!/bin/bash
#SBATCH --dependency=afterok:23929
python postprocess.py
""",
      good="""#!/bin/bash
#SBATCH --dependency=singleton
#SBATCH --job-name=postprocess
python postprocess.py
""")
def _fixed_job_id_in_dependency(ctx: Context) -> Iterator[Any]:
    if _self_resubmissions(ctx):
        return  # HPC325 reports the line, with what it does to the chain
    for d, ids in _fixed_dependencies(ctx):
        jobs = f"job {ids[0]}" if len(ids) == 1 else "jobs " + ", ".join(ids)
        yield (d.line, f"--dependency={d.value} names {jobs}, which is only right for one submission of this script; "
                       "give the dependency on the sbatch command line instead (sbatch --dependency=afterok:$JOB …)")


#: sbatch options whose value only sbatch would want: written after the job script, they are the script's arguments
_SBATCH_ONLY_AFTER_SCRIPT = frozenset({"--dependency", "--array", "--partition", "--qos", "--account", "--gres",
                                       "--nodes", "--time", "--job-name"})


@rule("HPC327", "sbatch-option-after-the-script", "warning",
      summary="an sbatch in the script gives sbatch options after the job script's name, where they are the "
              "script's own arguments",
      why="sbatch reads its options up to the script's name; everything after it is handed to the script as its "
          "arguments ($1, $2 …), as sbatch(1) says: sbatch [OPTIONS…] script [args…]. In sbatch next.sh "
          "--dependency=afterok:$SLURM_JOB_ID the dependency never reaches sbatch: the next job is queued at once, "
          "with no dependency, and can run beside (or before) the one that was to come first. The same holds for "
          "--array, --partition, --time and the other options of the job.",
      fix="Put sbatch's options before the script: sbatch --dependency=afterok:$SLURM_JOB_ID next.sh.",
      bad="""#!/bin/bash
#SBATCH --time=01:00:00
srun python stage1.py
sbatch stage2.sh --dependency=afterok:$SLURM_JOB_ID
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
srun python stage1.py
sbatch --dependency=afterok:$SLURM_JOB_ID stage2.sh
""")
def _sbatch_option_after_the_script(ctx: Context) -> Iterator[Any]:
    for line, words, _ in _sbatch_calls(ctx):
        found = _submitted_script(words)
        if found is None:
            continue
        script = found[0]
        after = [str(w.value) for w in words[words.index(script) + 1:]]
        late = [w for w in after if w.startswith("--") and sbatch_long_option(w.partition("=")[0])
                in _SBATCH_ONLY_AFTER_SCRIPT]
        if late:
            yield (line, f"{late[0].partition('=')[0]} comes after the job script {script.value}, so sbatch hands it "
                         f"to the script as an argument and never reads it; put it before the script: sbatch "
                         f"{' '.join(late)} {script.value}")


@rule("HPC545", "export-without-all", "warning",
      summary="--export names variables without ALL (#SBATCH --export=LR=0.1, sbatch --export=LR=$lr job.sh): the job "
              "gets those alone, not the environment",
      why="sbatch passes the submitting shell's environment to the job unless --export says otherwise, and a list "
          "without ALL says otherwise: of that environment the job gets the variables it names and Slurm's own "
          "SLURM_* ones, nothing else. What was exported or loaded before sbatch (a module, a conda environment, "
          "DATA=…) is missing in the batch shell. Worse, sbatch hands the list on as SLURM_EXPORT_ENV, which every "
          "srun in the job reads as its own --export: the steps start with that list alone, without even PATH, and "
          "srun cannot find the program (on the practice cluster: \"execve(): bash: No such file or directory\"). "
          "--export=NONE is reported by HPC516.",
      fix="Put ALL first: --export=ALL,LR=0.1 (the environment, plus these variables).",
      bad="""#!/bin/bash
#SBATCH --export=LR=0.1
#SBATCH --time=01:00:00
module load apptainer
srun apptainer exec pytorch_2.3.sif python train.py
""",
      good="""#!/bin/bash
#SBATCH --export=ALL,LR=0.1
#SBATCH --time=01:00:00
module load apptainer
srun apptainer exec pytorch_2.3.sif python train.py
""")
def _export_without_all(ctx: Context) -> Iterator[Any]:
    for d in ctx.parsed.directives:
        if d.flag == "--export" and d.applied and _without_all(d.value):
            line = ctx.parsed.lines[d.line - 1]
            written = line.replace(d.value, "ALL," + d.value, 1) if line.count(d.value) == 1 else None
            yield (d.line, _export_message(d.value, "the job"),
                   Fix("put ALL first in --export", d.line, d.line, text=written) if written else None)
    for line, words, quote in _sbatch_calls(ctx):
        for k, word in enumerate(words):
            text = str(word.value)
            value = text.partition("=")[2] if text.startswith("--export=") else \
                str(words[k + 1].value) if text == "--export" and k + 1 < len(words) else None
            if value is not None and _without_all(value):
                yield line, _export_message(value, "the job this sbatch submits")
                break


def _without_all(value: str) -> bool:
    """Whether an --export value names variables without ALL (NONE and ALL are not such lists)."""
    items = [item.partition("=")[0].strip() for item in value.split(",") if item.strip()]
    if any(c in name for name in items for c in "${}<>[]`"):
        return False  # names held in a variable or a template's placeholder ({{keepvars}}): not known here
    return bool(items) and not any(item.upper() in ("ALL", "NONE") for item in items)


def _export_message(value: str, job: str) -> str:
    names = ", ".join(item.partition("=")[0] for item in value.split(",") if item.strip())
    return (f"--export={value} has no ALL, so {job} gets {names} and Slurm's own variables, not the submitting "
            "shell's environment, and its srun steps start with that list alone, without even PATH (srun cannot find "
            f"the program: 'execve(): No such file or directory'); write --export=ALL,{value}")


#: the Slurm commands that take a job id as an argument
_TAKES_A_JOB_ID = frozenset({"scancel", "scontrol", "squeue", "sacct", "seff", "sstat", "sattach"})


@rule("HPC547", "job-id-without-parsable", "error",
      summary="a job id is taken from sbatch's output without --parsable (jid=$(sbatch job.sh)), so it holds "
              "'Submitted batch job N', and then used as a job id (--dependency=afterok:$jid, scancel $jid)",
      why="Without --parsable sbatch prints a sentence, 'Submitted batch job 123456', and $(sbatch job.sh) keeps all "
          "of it. sbatch --dependency=afterok:$jid next.sh then gets --dependency=afterok:Submitted, and takes "
          "'batch' for its job script: the submission fails ('Unable to open file batch'), and the job that was to "
          "follow is never queued, often in a driver nobody watches. scancel $jid and squeue -j $jid fail the same "
          "way. Not reported when the id is cut out of the sentence first (jid=${jid##* }, awk '{print $4}').",
      fix="Ask sbatch for the id alone: jid=$(sbatch --parsable job.sh) (it prints N, or N;CLUSTER on a "
          "multi-cluster site: ${jid%%;*} keeps the id).",
      bad="""#!/bin/bash
jid=$(sbatch train.sbatch)
sbatch --dependency=afterok:$jid eval.sbatch
""",
      good="""#!/bin/bash
jid=$(sbatch --parsable train.sbatch)
sbatch --dependency=afterok:$jid eval.sbatch
""")
def _job_id_without_parsable(ctx: Context) -> Iterator[Any]:
    if "sbatch" not in ctx.parsed.source:
        return
    commands = [c for c in _simple_commands(ctx.parsed.lexed.code) if not isinstance(c, _Inner)]
    for k, cmd in enumerate(commands):
        for name, word, inner in _sbatch_substitutions(cmd):
            options, _ = sbatch_command_options([str(w.value) for w in inner[1:]])
            if any(flag == "--parsable" for flag, _ in options):
                continue
            used = _used_as_a_job_id(commands[k + 1:], name)
            if used is not None:
                at, how = used
                yield (word.line, f"sbatch without --parsable prints 'Submitted batch job N', and ${name} keeps all of "
                                  f"it, so {how} on line {at} gets 'Submitted' for the job id and fails; write "
                                  f"{name}=$(sbatch --parsable …)")


def _used_as_a_job_id(later: list[Any], name: str) -> tuple[int, str] | None:
    """Where ``$name`` is first used as a job id among the ``later`` commands, with how the message names the use;
    None when it is not, or when the name is set again first (jid=${jid##* })."""
    plain = re.compile(rf"\$(?:{name}\b|\{{{name}\}})")
    for cmd in later:
        # the command's own words, then an sbatch whose id an assignment keeps (next=$(sbatch -d afterok:$jid …)):
        # the substitution runs before the assignment it is in
        for line, words in [(cmd.line, cmd.words), *((w.line, inner) for _, w, inner in _sbatch_substitutions(cmd))]:
            raws = [w.raw for w in words]
            if not raws or not any(plain.search(r) for r in raws):
                continue
            program = str(words[0].value).rsplit("/", 1)[-1]
            if program == "sbatch":
                for k, raw in enumerate(raws):
                    option = raws[k - 1] if k else ""
                    if plain.search(raw) and (raw.startswith(("--dependency=", "-d")) or option in ("--dependency", "-d")):
                        return line, "the --dependency"
            elif program in _TAKES_A_JOB_ID:
                return line, program
        if any(n == name for n, _ in cmd.assignments):
            return None  # set again (cut out of the sentence, or a new job's id)
    return None


def _sbatch_substitutions(cmd: Any) -> list[tuple[str, Any, Any]]:
    """``(name, value word, the command's words)`` for each of ``cmd``'s assignments whose whole value is one
    command substituted, ``$(sbatch …)`` or a backquoted one (not sbatch's output piped on, | awk '{print $4}', nor
    several commands: not its output alone)."""
    out = []
    for name, word in cmd.assignments:
        m = _SBATCH_SUBSTITUTION.fullmatch(word.raw.strip('"'))
        if m is None:
            continue
        try:
            inner = lex_script(m.group(1) or m.group(2)).code
        except ParseError:
            continue
        if len(inner) == 1 and inner[0].kind == "simple":
            out.append((name, word, inner[0].words))
    return out


# --------------------------------------------------------------------------------------------
# the script file itself: what sbatch refuses before reading any directive

@rule("HPC314", "windows-line-endings", "error",
      summary="the script has Windows (CRLF) or old Mac (CR only) line endings",
      why="sbatch refuses a script with \\r\\n: \"Batch script contains DOS line breaks (\\r\\n) instead of "
          "expected UNIX line breaks (\\n)\". Run by bash, every line would end in an invisible carriage return "
          "($'\\r': command not found, file names with a stray character). A carriage return alone (old Mac "
          "editors) is worse: sbatch's check looks for \\r\\n only and accepts the script, but to sbatch and bash "
          "it is one line, so no #SBATCH line is read (the job gets the default resources) and the #! line names an "
          "interpreter that does not exist (/bin/bash\\r#SBATCH …): the job fails as it starts, after its time "
          "in the queue. In a file whose lines end in \\n, a carriage return alone in quotes is a character of the "
          "line (sed \"s/\\r//\") and is left alone.",
      fix="Convert the file to Unix line endings (dos2unix job.sh, or sed -i 's/\\r$//' job.sh; mac2unix job.sh "
          "for carriage returns alone) and set the editor to save with LF line endings.",
      bad="#!/bin/bash\r\n#SBATCH --time=01:00:00\r\nsrun python train.py\r\n",
      good="#!/bin/bash\n#SBATCH --time=01:00:00\nsrun python train.py\n")
def _windows_line_ends(ctx: Context) -> Iterator[Any]:
    text = ctx.text
    windows = text.count("\r\n")
    alone = [m.start() for m in _LONE_CARRIAGE_RETURN.finditer(text)]
    if len(alone) <= text.count("\n"):
        # no more than the lines that end in \n: not the file's line ends. One in quotes is the script's own character
        # (sed "s/\r//"), which a line end would break; one outside quotes ends a line the editor showed
        alone = [at for at in alone if not _in_quotes(text, at)]
    if not windows and not alone:
        return
    ends = set(alone)
    fix = Fix("convert the line endings to LF (as dos2unix and mac2unix do)", 1, text.count("\n") + 1,
              text=_LONE_CARRIAGE_RETURN.sub(lambda m: "\n" if m.start() in ends else "\r", text).replace("\r\n", "\n"))
    name = shlex.quote(ctx.path or "FILE")
    if not alone:
        yield (text.count("\n", 0, text.find("\r\n")) + 1,
               f"the file has Windows line endings (\\r\\n, on {_lines(windows)}): sbatch refuses it (\"Batch "
               f"script contains DOS line breaks\"); convert it with dos2unix {name} and save with LF line endings",
               fix)
        return
    also = f", and Windows ones (\\r\\n) on {_lines(windows)}" if windows else ""
    first = text[:alone[0]]
    # the interpreter as the kernel reads the #! line: up to the first blank (/bin/bash\r#SBATCH)
    interpreter = re.match(r"#![ \t]*([^ \t\n]*)", text).group(1) if first.startswith("#!") else ""
    shown = repr(interpreter[:40])[1:-1] + ("…" if len(interpreter) > 40 else "")
    effect = (f": the #! line names an interpreter that does not exist ({shown}), so the job fails as it "
              "starts, and sbatch reads none of the #SBATCH lines" if first.startswith("#!") and "\n" not in first
              else "")
    yield (text.count("\n", 0, alone[0]) + 1,
           f"the file has old Mac line endings (a carriage return \\r alone, on {_lines(len(alone))}){also}: sbatch "
           f"and bash see no line end there and read the lines around it as one{effect}; convert it with mac2unix "
           f"{name} (part of dos2unix) and save with LF line endings", fix)


#: a carriage return that ends no Windows line (\r\n): bash and sbatch take it for an ordinary character
_LONE_CARRIAGE_RETURN = re.compile(r"\r(?!\n)")


def _in_quotes(text: str, at: int) -> bool:
    """Whether the character at ``at`` stands inside quotes on its line (quotes are not followed across lines)."""
    quote = ""
    escaped = False
    for char in text[text.rfind("\n", 0, at) + 1:at]:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
    return bool(quote)


def _lines(count: int) -> str:
    """``1 line`` or ``N lines``, for HPC314's messages."""
    return f"{count} line{'s' if count > 1 else ''}"


@rule("HPC315", "no-shebang-line", "error",
      summary="a batch script whose first line does not start with #!",
      why="sbatch refuses the script (\"This does not look like a batch script. The first line must start with #! "
          "followed by the path to an interpreter\"). The #! must be the very first two characters: a blank line, "
          "a space or a byte-order mark before it is enough.",
      fix="Make #!/bin/bash the first line of the file, above the #SBATCH lines.",
      bad="""#SBATCH --time=01:00:00
srun python train.py
""",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
srun python train.py
""")
def _no_shebang(ctx: Context) -> Iterator[Any]:
    text = ctx.text
    if text.startswith("#!") or not text.strip():
        return  # an empty file: HPC316
    lines = text.split("\n")
    if text.startswith("\ufeff"):
        if text.startswith("\ufeff#!") or ctx.parsed.directives:
            yield (1, "the file starts with a UTF-8 byte-order mark (BOM, often added by Windows editors): sbatch reads "
                      "it as part of the first line and refuses the script (the first line must start with #!); "
                      "remove it", Fix("remove the byte-order mark", 1, 1, text=lines[0][1:]))
        return
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    if lines[first].lstrip().startswith("#!"):
        where = "a space" if first == 0 else ("a blank line" if first == 1 else f"{first} blank lines")
        yield (1, f"{where} before the #! line: sbatch refuses the script (\"This does not look like a batch "
                  "script\"; #! must be the first two characters of the file); remove it",
               Fix("start the file with its #! line", 1, first + 1, text=lines[first].lstrip()))
        return
    if not ctx.parsed.directives:
        return  # commands without #! or #SBATCH lines: a snippet typed at a prompt, not a batch script
    below = next((i for i, line in enumerate(lines) if line.startswith("#!")), None)
    if below is not None and all(not line.strip() or line.lstrip().startswith("#") and
                                 not line.lstrip().startswith("#SBATCH") for line in lines[:below]):
        yield (1, f"the #! line is line {below + 1}, below comments: sbatch refuses the script (\"This does not look "
                  "like a batch script\"; #! must be the first two characters of the file); move it to the first "
                  "line", Fix("move the #! line to the first line", 1, below + 1,
                              text="\n".join([lines[below], *lines[:below]])))
        return
    yield (1, "the first line does not start with #! (e.g. #!/bin/bash): sbatch refuses the script (\"This does not "
              "look like a batch script\"); add #!/bin/bash as the first line",
           Fix("add #!/bin/bash as the first line", 1, 1, text="#!/bin/bash\n" + lines[0]))


@rule("HPC316", "empty-script", "error",
      summary="the script is empty (or only blank lines)",
      why="sbatch refuses it (\"Batch script is empty!\", \"Batch script contains only whitespace!\"): usually the "
          "file was saved before it was written, or a tool wrote it to another name.",
      fix="Write the job into the file: #!/bin/bash, the #SBATCH lines, then the commands.",
      bad="",
      good="""#!/bin/bash
#SBATCH --time=01:00:00
srun python train.py
""")
def _empty_script(ctx: Context) -> Iterator[Any]:
    if ctx.text.strip():
        return
    if ctx.text:
        yield 1, "the file holds only whitespace: sbatch refuses it (\"Batch script contains only whitespace!\")"
    else:
        yield 1, "the file is empty: sbatch refuses it (\"Batch script is empty!\")"
