"""The fast paths of rendering and validation give exactly what the plain code gives.

Each fast path skips work when one C-level test says it can only find nothing; these tests drive
values across those tests' edges (hostile text, verbatim words, references, control characters)
and compare with the plain reading, written out here as the reference.
"""

import dataclasses
import re

from hypothesis import given, settings, strategies as st

from hpcwidgets.errors import Problem
from hpcwidgets.render import quote as quote_module
from hpcwidgets.render.quote import _quote, quote, quote_words
from hpcwidgets.spec import Bind, SlurmJob, Torchrun, Verbatim, Workflow
from hpcwidgets.spec._meta import Spec, opt

PIECES = list("ab -_/.:=@%'\"\\$`;|*~#\n\t\x01") + ["$SCRATCH", "${USER}", "$(id)", "\\$HOME", "$lr", "${lr}"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
WORD = st.one_of(TEXT, TEXT.map(Verbatim))


def _plain_quote(value):
    """quote() without its memo: the contract's function itself."""
    return str(value) if isinstance(value, Verbatim) else _quote(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORD, max_size=6))
def test_quote_words_is_quote_word_by_word(words):
    assert quote_words(words) == [_plain_quote(w) for w in words]
    assert quote_words(tuple(words)) == [quote(w) for w in words]


@given(TEXT)
def test_a_verbatim_word_is_never_served_the_plain_words_quoting(text):
    quote(text)  # the memo now knows the plain text, which a Verbatim of it equals
    assert quote(Verbatim(text)) == text
    assert quote_words([text, Verbatim(text)]) == [_quote(text), text]


def test_the_memo_stays_bounded():
    for i in range(quote_module._QUOTED_MAX + 10):
        quote(f"word {i}")
    assert len(quote_module._QUOTED) <= quote_module._QUOTED_MAX
    assert quote("word 1") == "'word 1'"


# -- SlurmJob: the #SBATCH text fields ------------------------------------------------------------

_CONTROL = re.compile(r"[\x01-\x1f\x7f]")
DIRECTIVE_TEXT = ("job_name", "partition", "account", "mem", "time", "output", "mail_user", "constraint")


def _directive_text_messages(job):
    """The reference: each #SBATCH text field read one by one (what the fast path may skip)."""
    out = []
    for name in (f.name for f in job.field_specs() if f.name in DIRECTIVE_TEXT):  # in declaration order
        value = getattr(job, name)
        if not value or not isinstance(value, str):
            continue
        if name != "job_name" and _CONTROL.search(value):
            out.append((name, "control"))
        elif "$" in value:
            out.append((name, "reference"))
    return out


def _kind(p: Problem) -> tuple[str, str] | None:
    if "control character" in p.message:
        return p.field, "control"
    if "not expanded" in p.message and p.field in DIRECTIVE_TEXT:
        return p.field, "reference"
    return None


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({name: st.one_of(st.just(""), WORD) for name in DIRECTIVE_TEXT}))
def test_job_text_fast_path_reports_what_the_field_by_field_reading_does(values):
    job = SlurmJob(**values)
    found = [k for k in map(_kind, job._check()) if k is not None]
    assert found == _directive_text_messages(job)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([None, 2, "3-2"]), st.sampled_from([None, 4, "a100:2,v100:0"]),
       st.sampled_from([None, 8, 6, "a100:0"]), st.sampled_from([None, 1, 9]), st.sampled_from([None, 2]))
def test_job_count_checks_around_their_fast_paths(nodes, gpus_per_node, gpus, ntasks, per_node):
    """No text among the counts, no GPUs in total, no task count: each skips checks that could say nothing; a value
    that one of them could judge still gets its problem."""
    job = SlurmJob(nodes=nodes, gpus_per_node=gpus_per_node, gpus=gpus, ntasks=ntasks, ntasks_per_node=per_node)
    messages = " | ".join(p.message for p in job._check())
    assert ("asks for no GPUs" in messages) == ("a100:0" in (gpus, gpus_per_node) or gpus_per_node == "a100:2,v100:0")
    assert ("the most is below the least" in messages) == (nodes == "3-2")
    assert ("is not a whole number of nodes" in messages) == (gpus == 6 and gpus_per_node == 4)
    assert ("tasks do not fit" in messages) == (ntasks == 9 and per_node == 2 and nodes in (2, "3-2"))


# -- Workflow: lower-case references in the step ----------------------------------------------------

_LOWER = re.compile(r"(?<!\\)\$(?:\{([a-z_][a-z0-9_]*)[}:#%/^,\[-]|([a-z_][a-z0-9_]*)(?![A-Za-z0-9_]))")


@settings(max_examples=200, deadline=None)
@given(st.lists(WORD, max_size=4), st.lists(WORD, max_size=3))
def test_step_texts_fast_path_matches_the_field_by_field_reading(args, program):
    w = Workflow(launcher=Torchrun(script="t.py", args=tuple(args)), program=tuple(program))
    expected = []
    for field, words in w._step_word_groups():
        text = "\n".join(words)
        if "$" in text and _LOWER.search(text):
            expected.append((field, "\n".join(x for x in words if x.__class__ is str)))
    assert list(w._step_texts()) == expected


# -- Spec.problems goes straight to each class's own compiled checks ---------------------------------

def test_a_subclass_gets_checks_for_its_own_fields():
    Bind("/a", "/b").problems()  # the parent's checks are compiled (and installed) first

    @dataclasses.dataclass(frozen=True)
    class Tagged(Bind):
        tag: str = opt("", label="Tag", help="A tag.", role="internal", choices=("", "x"))

    assert Tagged("/a", "/b", tag="y").problems() == [Problem("tag", "Tag must be one of , x; got 'y'")]
    assert Bind("/a", "relative").problems() == [Problem("dst", "container path 'relative' must be absolute "
                                                              "(start with /)")]
    assert Spec.problems(Tagged("/a", "/b", tag="y")) == Tagged("/a", "/b", tag="y").problems()


# --- V2: the models' own cross-field checks (_check) against their bodies before the fast paths -------------------
# The reference copies below are the checks as they were written before each was given its early returns and
# C-level tests; every model the strategies build (each check triggered, and hostile values: verbatim words, None,
# other types, values equal to a default but not the same object) must get the same problems in the same order.

from typing import Any  # noqa: E402

from hpcwidgets.spec import ApptainerPull, ApptainerRun, ChRun, EnvVar, Srun, SweepAxis  # noqa: E402
from hpcwidgets.spec.apptainer import _PROGRAM_PATH  # noqa: E402
from hpcwidgets.spec.common import extra_problems, list_items, option_like_operands  # noqa: E402
from hpcwidgets.spec.slurm import (  # noqa: E402
    _CONTROL, _GPU_TYPE, _GRES_ITEM, _MODULE, _PATTERN_FOR, _PLAIN, _SPACE, _VARIABLE, GPU_COUNTS, HETJOB_SEPARATORS,
    MAIL_TYPES, STRAY_DIRECTIVE, TYPED_DASH, TYPED_DASHES, _directive_text_fields, _whole, array_problem,
    is_hetjob_word, keyboard_option, node_range)
from hpcwidgets.spec.torchrun import _NNODES  # noqa: E402
from hpcwidgets.spec.units import parse_mem, parse_time  # noqa: E402
from hpcwidgets.spec.workflow import _PER_TASK_REF, CONTAINERS, PREPARE  # noqa: E402


def _old_job_check(self) -> list[Problem]:
    out: list[Problem] = self._shell_problems()
    names, values = _directive_text_fields(type(self))
    texts = values(self)
    if set(map(type, texts)) <= _PLAIN and "$" not in (joined := "".join(texts)) and not _CONTROL.search(joined):
        texts = ()  # the usual values: plain text without a reference or a control character, nothing to report
    for name, value in zip(names, texts):
        if not value or not isinstance(value, str):
            continue  # most are empty; another type is the generic check's
        if name != "job_name" and _CONTROL.search(value):
            out.append(Problem(name, f"{value!r} holds a line break or another control character, which an "
                                     "#SBATCH line cannot carry (it would be written as a space); remove it"))
        elif "$" in value:
            ref = _VARIABLE.search(value)
            shown = "$" if ref is None else "$(…)" if ref.group(0) == "$(" else ref.group(0)
            pattern = _PATTERN_FOR.get(shown.strip("${}"))
            if name in ("output", "error", "input"):
                how = (f"the pattern sbatch fills in for it: {pattern}" if pattern else
                       "a file name pattern such as %u, %x, %j (%A_%a in an array)")
            else:
                how = f"sbatch's command line, where your shell expands it (sbatch --{name.replace('_', '-')}=… job.sh)"
            out.append(Problem(name, f"{value!r}: #SBATCH lines are not read by the shell, so {shown} is not "
                                     f"expanded; use a fixed value or {how}"))
    if self.time:
        try:
            parse_time(self.time)
        except ValueError as exc:
            out.append(Problem("time", str(exc)))
        else:
            if self.time != self.time.strip():
                out.append(Problem("time", f"{self.time!r} has blanks around it, and sbatch refuses it ('Invalid "
                                           f"--time specification'); write {self.time.strip()!r}"))
    mems = [n for n, v in (("mem", self.mem), ("mem_per_cpu", self.mem_per_cpu), ("mem_per_gpu", self.mem_per_gpu)) if v]
    for name in mems:
        try:
            parse_mem(getattr(self, name))
        except ValueError as exc:
            out.append(Problem(name, str(exc)))
    if len(mems) > 1:
        flags = ", ".join("--" + n.replace("_", "-") for n in mems)
        out.append(Problem(mems[1], f"{flags} exclude each other; keep one"))
    if self.cpus_per_gpu and self.cpus_per_task:
        out.append(Problem("cpus_per_gpu", "--cpus-per-gpu cannot be combined with --cpus-per-task; keep one"))
    if isinstance(self.array, str) and self.array and array_problem(self.array):
        out.append(Problem("array", array_problem(self.array)))
    if self.gpu_type and not self.gpus_per_node:
        out.append(Problem("gpu_type", "a GPU type needs GPUs per node (e.g. 1)"))
    if isinstance(self.gpus_per_node, str) and GPU_COUNTS.fullmatch(self.gpus_per_node):
        if self.gpu_type:
            out.append(Problem("gpu_type", f"GPUs per node {self.gpus_per_node!r} names its types itself; "
                                           "leave GPU type empty"))
    if isinstance(self.gpu_type, str) and self.gpu_type and not _GPU_TYPE.fullmatch(self.gpu_type):
        out.append(Problem("gpu_type", f"{self.gpu_type!r} is not a GPU type name (letters, digits, _ . -)"))
    out += self._gpus_and_per_node()
    out += self._text_counts()
    # each check below is about a task count (_whole(None) is 0): without one, none applies
    tasks = _whole(self.ntasks) if self.ntasks is not None else 0
    per_node, span = (_whole(self.ntasks_per_node), node_range(self.nodes)) if tasks else (0, None)
    if tasks and per_node and span is not None and span[1] > 0 and tasks > per_node * span[1]:
        where = f"{self.nodes} node(s)" if span[0] == span[1] else f"at most {span[1]} nodes ({self.nodes})"
        out.append(Problem("ntasks", f"{tasks} tasks do not fit in {where} × {per_node} tasks per node; "
                                        f"ask for at most {per_node * span[1]} tasks, or more nodes"))
    elif tasks and span is not None and span[0] > tasks:
        # sbatch: "can't run 1 processes on 2 nodes, setting nnodes to 1"
        out.append(Problem("ntasks", f"{tasks} task{'s' if tasks > 1 else ''} on {self.nodes} nodes: a node needs "
                                     f"a task, so sbatch lowers the nodes to {tasks}; ask for at least {span[0]} "
                                     "tasks, or fewer nodes"))
    elif tasks and per_node and (span == (1, 1) or self.nodes is None) and tasks < per_node:
        out.append(Problem("ntasks", f"--ntasks={tasks} wins over --ntasks-per-node={per_node} on one node (sbatch "
                                     f"takes the latter as a maximum): the job gets {tasks} task"
                                     f"{'s' if tasks > 1 else ''}, not {per_node}; drop one of the two"))
    if isinstance(self.mail_type, str) and self.mail_type:
        bad = [t for t in self.mail_type.split(",") if t.strip().upper() not in MAIL_TYPES]
        if bad:
            out.append(Problem("mail_type", f"unknown mail type {', '.join(bad)}; use {', '.join(MAIL_TYPES[:6])}, …"))
    if isinstance(self.job_name, str) and _SPACE.search(self.job_name.replace(" ", "")):
        out.append(Problem("job_name", f"{self.job_name!r}: a job name cannot hold a line break, a tab or another "
                                       "blank than a space (an #SBATCH line ends at the line break); use - or _"))
    if self.extra_directives:  # an empty (or falsy) value has no items to check
        out += self._extra_values()
        for d in list_items(self.extra_directives):
            if isinstance(d, str) and d and d[0] in TYPED_DASHES:
                name, eq, value = d.partition("=")
                out.append(Problem("extra_directives", f"{d!r} {TYPED_DASH} (copied from a document?): "
                                                       f"type it on the keyboard, {keyboard_option(name)}{eq}{value}"))
            elif isinstance(d, str) and not d.startswith("-") and not is_hetjob_word(d):
                out.append(Problem("extra_directives", f"{d!r}: {STRAY_DIRECTIVE}, e.g. --signal=USR1@90"))
    if self.env:
        names = [e.name for e in list_items(self.env) if isinstance(e, EnvVar)]
        for name in sorted({n for n in names if names.count(n) > 1}):
            out.append(Problem("env", f"{name} is exported more than once; keep one value"))
    for m in list_items(self.modules):
        if isinstance(m, str) and m.startswith("-"):
            out.append(Problem("modules", f"{m!r} starts with -, so module load reads it as one of its options; "
                                          "give the module's name (options such as --force go in a set-up line)"))
        elif isinstance(m, str) and not _MODULE.fullmatch(m):
            out.append(Problem("modules", f"{m!r} is not a module name (e.g. apptainer or cuda/12.1)"))
    for item in list_items(self.other_gres):
        if not isinstance(item, str):
            continue
        if "$" in item:
            out.append(Problem("other_gres", f"{item!r}: #SBATCH lines are not read by the shell, so ${{…}} is not "
                                             "expanded; write the amount itself, e.g. lscratch:200"))
        elif not _GRES_ITEM.fullmatch(item):
            out.append(Problem("other_gres", f"{item!r} is not a generic resource; write NAME[:TYPE]:COUNT, e.g. lscratch:200"))
        elif item.partition(":")[0] == "gpu" and self.gpus_per_node and self.gpu_flag == "gres":
            out.append(Problem("other_gres", f"--gres asks for GPUs twice ({self.gres()} and {item}); ask for them "
                                             "once, with the count each node needs"))
        elif item.partition(":")[0] == "gpu":
            out.append(Problem("other_gres", f"{item!r}: ask for GPUs with GPUs per node (and GPU type), not among "
                                             "the other generic resources"))
    return out

def _old_workflow_check(self) -> list[Problem]:
    out: list[Problem] = []
    if not isinstance(self.job, SlurmJob):
        return out  # the generic type check already said so
    names = [e.name for e in self.exports if isinstance(e, EnvVar)]
    seen = {e.name for e in self.job.env if isinstance(e, EnvVar)}
    for name in sorted({n for i, n in enumerate(names) if n in seen or n in names[:i]}):
        out.append(Problem("exports", f"{name} is exported more than once; keep one value"))
    if self.container is not None and not isinstance(self.container, CONTAINERS):
        out.append(Problem("container", f"expected an ApptainerRun or ChRun, got {type(self.container).__name__}"))
        return out
    for item in self.prepare:
        if not isinstance(item, PREPARE):
            names = ", ".join(c.__name__ for c in PREPARE)
            out.append(Problem("prepare", f"{type(item).__name__} cannot be a preparation step; use one of {names}"))
    if self.launcher is not None and self.program:
        out.append(Problem("program", "both a launcher and a program are set; the launcher runs the training script, "
                                      "so move the program's script and arguments into the launcher, or remove the launcher"))
    command = getattr(self.container, "command", ()) if self.container is not None else ()
    if command and str(command[0]).startswith("-"):
        # apptainer exec says so among its own problems (container.command)
        if not (getattr(self.container, "kind", "") == "apptainer.run" and self.container.action == "exec"):
            out.append(Problem("container.command", f"{command[0]} comes after the image, so it is passed to the "
                                                    "program, not to the container runtime; put it before the image "
                                                    f"(… {command[0]} IMAGE)"))
    elif command and (self.launcher is not None or self.program):
        what = "launcher" if self.launcher is not None else "program"
        out.append(Problem("container.command", f"the container has its own command and a {what} is set too; "
                                                f"the {what} becomes the container's command: clear container.command"))
    if isinstance(self.srun, Srun) and getattr(self.srun, "command", ()):
        out.append(Problem("srun.command", "in a workflow srun launches the container, launcher or program; "
                                           "clear srun.command and set those instead"))
    if isinstance(self.container, ApptainerRun) and self.container.action in ("shell", "test") \
            and (self.launcher is not None or self.program):
        out.append(Problem("container.action", f"apptainer {self.container.action} runs no command; use exec"))
    if not self.runs_something() and not self._runs_own_lines():
        if self.container is not None:
            out.append(Problem("program", "the container has nothing to run: set a launcher (torchrun) or a program "
                                          "such as python train.py"))
        else:
            out.append(Problem("program", "nothing to run: set a program (e.g. python train.py), a launcher or a container"))
    launch = _old_launchers_per_node_problems(self)
    if not any("SLURM_NTASKS=" in p.message for p in launch):  # several launchers per node: --nnodes is moot
        out += _old_node_count_problems(self)
    out += launch
    if isinstance(self.srun, Srun):
        out += _old_per_task_problems(self.program)
    sweep = self._sweep_problems()
    out += sweep
    if not sweep and not any(not isinstance(a, SweepAxis) or a.problems() for a in self.sweep_grid):
        out += self._unset_problems()  # a broken sweep is reported as such, not as its unset variables
    return out

def _old_per_task_problems(program) -> list[Problem]:
    """A typed program word naming $SLURM_PROCID/LOCALID/NODEID with its dollar unescaped."""
    out = []
    for k, word in enumerate(program):
        if isinstance(word, Verbatim):
            continue
        found = re.search(r"(?<!\\)\$\{?(SLURM_(?:PROCID|LOCALID|NODEID))\b", str(word))
        if not found:
            continue
        name = found.group(1)
        if k >= 2 and str(program[k - 1]) == "-c" and str(program[k - 2]).rsplit("/", 1)[-1] in ("bash", "sh"):
            fix = (f"write \\${name} in the -c script, so that each task's shell expands it (what you type is text, "
                   "except $NAME, which the batch shell expands)")
        else:
            fix = f"read it in the program (os.environ['{name}']), or run it through bash -c '… \\${name} …'"
        out.append(Problem("program", f"${name} is expanded once by the batch shell, before srun starts the tasks, "
                                      f"so every task gets task 0's number; {fix}"))
    return out


def _old_step_word_groups(self) -> list[tuple[str, Any]]:
    """The words the step passes on that may refer to variables, by field: the program, the launcher's
    script and arguments, the container's command, environment and binds, and the exported values."""
    groups: list[tuple[str, Any]] = [("program", self.program)]
    if isinstance(self.launcher, Torchrun):
        groups.append(("launcher.args", (self.launcher.script, *self.launcher.args)))
    c = self.container
    if c is not None:
        groups.append(("container.command", getattr(c, "command", ()) or ()))
        groups.append(("container.env", [e.value for e in getattr(c, "env", ()) or () if isinstance(e, EnvVar)]))
        groups.append(("container.binds", [part for b in getattr(c, "binds", ()) or () if isinstance(b, Bind)
                                           for part in (b.src, b.dst)]))
    groups.append(("exports", [e.value for e in self.exports if isinstance(e, EnvVar)]))
    return groups

def _old_launchers_per_node_problems(self) -> list[Problem]:
    """torchrun started several times per node by srun, and a node rank the batch shell expands once
    (lint's HPC101 and HPC502 for a script; here so that a workflow never renders them)."""
    launcher, srun, out = self.launcher, self.srun, []
    if not isinstance(launcher, Torchrun) or not isinstance(srun, Srun):
        return []
    job = self.job
    own = srun.ntasks_per_node is not None
    per_node = srun.ntasks_per_node if own else job.ntasks_per_node
    tasks = 0  # the job's task count, which srun takes as its --ntasks over its own --ntasks-per-node=1
    if srun.ntasks_per_node == 1 and srun.ntasks is None and srun.nodes is None and type(job.nodes) is int:
        if type(job.ntasks) is int:
            tasks = job.ntasks
        elif type(job.ntasks_per_node) is int:
            tasks = job.ntasks_per_node * job.nodes
        tasks = tasks if tasks > job.nodes else 0
    if tasks:
        out.append(Problem("job.ntasks" if type(job.ntasks) is int else "job.ntasks_per_node",
                           f"srun takes the job's task count (SLURM_NTASKS={tasks}) as its --ntasks, which wins over "
                           "its own --ntasks-per-node=1, so it starts several torchrun launchers on each node on the "
                           "same GPUs; set the job's --ntasks-per-node=1 (torchrun starts one worker per GPU)"))
    elif isinstance(per_node, int) and per_node > 1 and srun.ntasks is None and not self._launchers_own_gpus():
        taken = "" if own else " (it takes the job's --ntasks-per-node)"
        out.append(Problem("srun.ntasks_per_node" if own else "job.ntasks_per_node",
                           f"srun starts {per_node} torchrun launchers on each node{taken} and each starts its own "
                           f"workers on the same GPUs; use {'' if own else 'the job' + chr(39) + 's '}"
                           "--ntasks-per-node=1 (torchrun starts one worker per GPU)"))
    rank = str(launcher.node_rank or "")
    found = _PER_TASK_REF.search(rank)
    if found:
        out.append(Problem("launcher.node_rank", f"--node-rank={rank}: the batch shell expands ${found.group(1)} "
                                                 "once, before srun starts the tasks, so every node gets rank 0; "
                                                 "leave --node-rank empty and use the c10d rendezvous, which "
                                                 "numbers the nodes itself"))
    return out

def _old_node_count_problems(self) -> list[Problem]:
    """torchrun's --nnodes against the nodes srun starts one launcher on (a job changed to 3 nodes that
    keeps --nnodes=2 hangs or rejects a launcher). Several launchers per node are lint's HPC101/HPC112."""
    launcher, srun = self.launcher, self.srun
    per_node = srun.ntasks_per_node if isinstance(srun, Srun) and srun.ntasks_per_node is not None \
        else self.job.ntasks_per_node  # srun inherits the job's
    if not isinstance(launcher, Torchrun) or launcher.standalone or not isinstance(srun, Srun) \
            or per_node not in (None, 1) or srun.ntasks is not None or self.job.ntasks is not None:
        return []
    if any(str(d).strip() in HETJOB_SEPARATORS for d in self.job.extra_directives):
        return []  # a heterogeneous job: the model holds its first component's nodes only
    nnodes = launcher.nnodes_int if isinstance(launcher.nnodes, str) else None
    span = (srun.nodes, srun.nodes) if isinstance(srun.nodes, int) else node_range(self.job.nodes)
    if span is not None and span[0] > 1 and str(launcher.nnodes).strip() == "" and not launcher.options_out_of_sight:
        count = span[0] if span[0] == span[1] else "$SLURM_NNODES"
        return [Problem("launcher.nnodes", f"torchrun has no --nnodes, so it takes 1, but srun starts it on each of the "
                                           f"job's {self.job.nodes} nodes: each node trains alone; set "
                                           f"--nnodes={count} and the c10d rendezvous at the head node "
                                           "($head_node:29500)")]
    if span is not None and 1 <= span[0] < span[1] and nnodes is not None and str(launcher.nnodes).strip().isdigit():
        return [Problem("launcher.nnodes", f"torchrun --nnodes={launcher.nnodes} is fixed, but the job asks for "
                                           f"{span[0]}-{span[1]} nodes and srun starts one launcher on each node it "
                                           "gets; use --nnodes=$SLURM_NNODES, the count the job got")]
    if nnodes is None or span is None or span[0] <= nnodes <= span[1] or span[0] < 1:
        return []  # (a node count below 1 is the job's own problem: advice built on it would mislead)
    nodes = span[0] if span[0] == span[1] else f"{span[0]}-{span[1]}"
    return [Problem("launcher.nnodes", f"torchrun --nnodes={launcher.nnodes} but srun starts one launcher on each of "
                                       f"the job's {nodes} nodes: the rendezvous "
                                       f"{'waits forever' if nnodes > span[1] else 'rejects the extra launchers'}; "
                                       + (f"use --nnodes={span[0]} (or $SLURM_NNODES, which follows the job)"
                                          if span[0] == span[1] else "use --nnodes=$SLURM_NNODES, which follows the job"))]

def _old_torchrun_check(self) -> list[Problem]:
    out: list[Problem] = []
    if not self.script:
        out.append(Problem("script", "a training script is required, e.g. train.py"))
    literal = self.literal_references()
    out += literal
    nproc = self.nproc_int
    if self.nproc_per_node and not (nproc is not None or self.nproc_per_node in ("gpu", "cpu", "auto")
                                    or self.nproc_per_node.startswith("$")) and not literal:
        out.append(Problem("nproc_per_node", f"{self.nproc_per_node!r}: use a number, gpu, cpu or auto"))
    if nproc == 0:
        out.append(Problem("nproc_per_node", "must be at least 1 (one process per GPU, e.g. 4 on a 4-GPU node)"))
    if self.nnodes and not (_NNODES.fullmatch(self.nnodes) or self.nnodes.startswith("$")) and not literal:
        out.append(Problem("nnodes", f"{self.nnodes!r}: use N or MIN:MAX (e.g. 2 or 1:4)"))
    nnodes = self.nnodes_int
    multi = nnodes is None or nnodes > 1
    if self.standalone:
        if self.nnodes and nnodes != 1:
            out.append(Problem("standalone", "--standalone is for one node; for several use the c10d rendezvous at the head node"))
        for name in ("rdzv_backend", "rdzv_endpoint", "rdzv_id"):
            if getattr(self, name):
                out.append(Problem(name, f"--standalone ignores --{name.replace('_', '-')}; remove it"))
    elif self.nnodes and multi and not self.rdzv_endpoint and not self.options_out_of_sight:
        out += self._no_meeting_point()
    if not self.standalone and self.nnodes and multi and self.rdzv_backend in ("", "static") \
            and self.node_rank in ("", None) and not self.options_out_of_sight:
        # torchrun's default backend is static: each node needs its own rank, else all are rank 0
        out.append(Problem("node_rank", "on several nodes the static rendezvous (torchrun's default without "
                                        "--rdzv-backend=c10d) needs each node's --node-rank, else every node "
                                        "is rank 0 and the job hangs; use --rdzv-backend=c10d "
                                        "--rdzv-endpoint=$head_node:29500, which numbers the nodes itself"))
    if self.rdzv_endpoint and "NODELIST" in self.rdzv_endpoint:
        out.append(Problem("rdzv_endpoint", f"{self.rdzv_endpoint!r} is a node list, not one host; resolve the head node "
                                            "with scontrol show hostnames on the host and use $head_node:29500"))
    why = ("is ignored by the c10d rendezvous" if self.rdzv_backend == "c10d"
           else "is ignored: the static rendezvous meets at --rdzv-endpoint")
    out += [Problem(name, f"--{name.replace('_', '-')} {why}; remove it") for name in self.ignored_options()]
    if self.module and self.no_python:
        out.append(Problem("no_python", "--module and --no-python exclude each other"))
    out += extra_problems(self.extra, self.other_value_options, "torchrun")
    return out + option_like_operands(self, "script")

def _old_apptainer_check(self) -> list[Problem]:
    out = []
    if not self.image:
        out.append(Problem("image", "an image is required (a .sif file or docker://repo:tag)"))
    elif isinstance(self.image, str) and _PROGRAM_PATH.fullmatch(self.image):
        out.append(Problem("image", f"{self.image} is a program, not an image: the image is missing, so {self.binary} "
                                    f"would try to open {self.image} as one; write {self.action} [options] IMAGE.sif "
                                    f"{self.image} …"))
    if self.action == "exec" and not self.command:
        out.append(Problem("command", "exec needs a command to run, e.g. python train.py"))
    elif self.action == "exec" and str(self.command[0]).startswith("-"):
        out.append(Problem("command", f"{self.command[0]} comes after the image, so {self.binary} runs it as the "
                                      f"program; put it before the image (exec {self.command[0]} IMAGE …)"))
    if self.action == "shell" and self.command:
        out.append(Problem("command", "shell takes no command; use exec to run one"))
    if self.nv and self.rocm:
        out.append(Problem("rocm", "choose --nv (NVIDIA) or --rocm (AMD), not both"))
    if self.contain and self.containall:
        out.append(Problem("contain", "--containall already implies --contain; keep one"))
    if self.home and self.no_home:
        out.append(Problem("no_home", "--home and --no-home contradict each other; keep one"))
    out += self._env_problems()
    out += extra_problems(self.extra, self.other_value_options, self.binary)
    out += option_like_operands(self, "image")
    return out



def _outcome(check, model):
    """The problems a check finds, or the kind of error it raises (a check may raise on a mistyped model: the
    compiled problems() then keeps the generic check's word for it)."""
    try:
        return check(model)
    except (TypeError, AttributeError, ValueError) as exc:
        return type(exc)


def _same_as_before(model, old):
    before = _outcome(old, model)
    if isinstance(before, type):
        return  # the old check raised on a mistyped model: a value it could not read; the new one may read past it
    assert _outcome(type(model)._check, model) == before


def _models(cls, values):
    """Models of ``cls`` with each field drawn from its list of values."""
    return st.fixed_dictionaries({name: st.sampled_from(vs) for name, vs in values.items()}).map(lambda kw: cls(**kw))


JOB_VALUES = {
    "job_name": ["", "train", "a b", "a\tb", "a\u00a0b", "$USER", Verbatim("x y"), None, 3],
    "nodes": [None, 1, 2, 3, "2-4", "3-2", "0-1", True, "x", Verbatim("2-4"), 0],
    "ntasks": [None, 1, 2, 8, "4", 0, False],
    "ntasks_per_node": [None, 1, 4, "2"],
    "cpus_per_task": [None, 8],
    "gpus_per_node": [None, 0, 4, "a100:2,v100:0", "a100:2", Verbatim("a100:1,v100:1"), False],
    "gpu_type": ["", "a100", "bad type", None, Verbatim("")],
    "other_gres": [(), ("lscratch:200",), ("gpu:2", "$X", "bad item", 3), ["x"], None],
    "gpu_flag": ["gres", "gpus-per-node"],
    "gpus": [None, 8, 6, "a100:4", 0, "", False],
    "gpus_per_task": [None, 1, "a100:0"],
    "cpus_per_gpu": [None, 4, 0],
    "mem": ["", "128G", "1.5G", 5, Verbatim(""), "a\nb"],
    "mem_per_cpu": ["", "4G", Verbatim("")],
    "mem_per_gpu": ["", "x"],
    "time": ["", "02:00:00", "bogus", None],
    "array": ["", "0-3", "3-1", "x", Verbatim("")],
    "output": ["", "%x-%j.out", "$HOME/out", "a\nb", "${SLURM_JOB_ID}.out", "é"],
    "mail_type": ["", "END", "end,bogus", 1],
    "extra_directives": [(), ("--signal=USR1@60s",), ("\u2013x",), ("hetjob", "stray"), None, ("",)],
    "modules": [(), ("apptainer",), ("-f",), ("bad name",), ("a\nb",), (3,), ["x"], None, "apptainer",
                ("cuda/12.1", Verbatim("gcc")), ("",)],
    "env": [(), (EnvVar("A", "1"), EnvVar("A", "2")), (EnvVar("B", "1"),), ("A=1",), None],
    "shell": ["/bin/bash", "/bin/sh", "zsh", "/usr/bin/python"],
    "fail_fast": ["strict", "off"],
}
JOBS = _models(SlurmJob, JOB_VALUES)


@settings(max_examples=600, deadline=None)
@given(JOBS)
def test_job_check_is_the_check_before_its_fast_paths(job):
    _same_as_before(job, _old_job_check)


TORCHRUN_VALUES = {
    "standalone": [False, True],
    "nnodes": ["", "1", "2", "2:2", "1:4", "x", "$SLURM_NNODES", "\\$SLURM_NNODES", Verbatim("2"), 2, None],
    "nproc_per_node": ["", "4", "0", "gpu", "x", "$N", "\\$N", 4],
    "rdzv_backend": ["", "c10d", "static", "etcd"],
    "rdzv_endpoint": ["", "$head_node:29500", "$SLURM_JOB_NODELIST:1", "\\$head_node:1"],
    "rdzv_id": ["", "$SLURM_JOB_ID"],
    "node_rank": ["", "0", "$SLURM_NODEID", None, 0, Verbatim("")],
    "master_addr": ["", "$head_node", None, 0],
    "master_port": [None, 29500, "", 0],
    "module": [False, True],
    "no_python": [False, True, 0],
    "extra": [(), ("--redirects", "3"), ("stray",), ("--opt value",), (Verbatim('"${DIST[@]}"'),), None],
    "script": ["", "train.py", "-x.py", Verbatim("")],
}
TORCHRUNS = _models(Torchrun, TORCHRUN_VALUES)


@settings(max_examples=600, deadline=None)
@given(TORCHRUNS)
def test_torchrun_check_is_the_check_before_its_fast_paths(launcher):
    _same_as_before(launcher, _old_torchrun_check)


APPTAINER_VALUES = {
    "binary": ["apptainer", "singularity"],
    "action": ["exec", "run", "shell", "test"],
    "image": ["", "x.sif", "/bin/bash", "-x.sif", None, Verbatim("")],
    "command": [(), ("python", "t.py"), ("-x",), (3,), None],
    "nv": [False, True], "rocm": [False, True, 0],
    "contain": [False, True], "containall": [False, True],
    "home": ["", "/h"], "no_home": [False, True],
    "nvccli": [False, True], "writable_tmpfs": [False, True], "overlay": [(), ("o.img:ro",), ("o.img",)],
    "env": [(), (EnvVar("A", "x=1,y"),), (EnvVar("A", "1"),), ("A=1",), None],
    "extra": [(), ("--app", "x"), ("stray",), None],
}
APPTAINERS = _models(ApptainerRun, APPTAINER_VALUES)


@settings(max_examples=400, deadline=None)
@given(APPTAINERS)
def test_apptainer_check_is_the_check_before_its_fast_paths(container):
    _same_as_before(container, _old_apptainer_check)


_LAUNCHER = Torchrun.multi_node(2, 4, "/payload/train.py", ("--epochs", "2", "--out", "/out/$SLURM_JOB_ID"))
WORKFLOW_VALUES = {
    "job": [SlurmJob(nodes=2, ntasks_per_node=1), SlurmJob(nodes="2-4"), SlurmJob(), SlurmJob(nodes=3, ntasks=3),
            SlurmJob(nodes=2, ntasks_per_node=4, gpus_per_task=1), SlurmJob(nodes=2, extra_directives=("hetjob",)),
            SlurmJob(env=(EnvVar("A", "1"),), fail_fast="off", setup=("lr=1",)), SlurmJob(nodes=0),
            SlurmJob(setup=("source env.sh",), array="0-1"), SlurmJob(nodes=2, extra_directives=None), "job"],
    "srun": [None, Srun(ntasks_per_node=1), Srun(), Srun(ntasks_per_node=4), Srun(ntasks=2), Srun(nodes=3),
             Srun(command=("x",)), Srun(ntasks_per_node=2, gpus_per_task=1), Srun(nodes="2")],
    "container": [None, ApptainerRun(image="i.sif", binds=(Bind("$SCRATCH", "/s"), Bind("$lr"))),
                  ApptainerRun(image="i.sif", action="shell"), ApptainerRun(image="i.sif", command=("-x",)),
                  ApptainerRun(image="i.sif", action="run", command=("-x",)),
                  ApptainerRun(image="i.sif", command=("python", "$seed")),
                  ApptainerRun(image="i.sif", env=(EnvVar("A", "$lr"), "B=1"), binds=("x",)),
                  ChRun(image="i"), ChRun(image="i", command=("-x",)), Bind("x"), "text"],
    "launcher": [None, _LAUNCHER, _LAUNCHER.replace(nnodes="3"), _LAUNCHER.replace(nnodes="1:4"),
                 _LAUNCHER.replace(nnodes="$SLURM_NNODES"), Torchrun.single_node(4, "t.py"),
                 _LAUNCHER.replace(node_rank="$SLURM_NODEID"), _LAUNCHER.replace(args=("--lr", "$lr")),
                 _LAUNCHER.replace(nproc_per_node="gpu"), _LAUNCHER.replace(nnodes=Verbatim("2"))],
    "program": [(), ("python", "t.py"), ("python", "${lr}"), (3,)],
    "prepare": [(), (ApptainerPull(source="docker://x"),), (Bind("x"),), None],
    "exports": [(), (EnvVar("A", "1"),), (EnvVar("A", "1"), EnvVar("A", "2")), (EnvVar("B", "$x"), "str"),
                (EnvVar("A", "1"), EnvVar("C", "$lr")), "AB"],
    "after": [(), ("echo $lr",)],
    "sweep_name": ["", "lr", "BAD"],
    "sweep_values": [(), ("1", "2")],
    "sweep_grid": [(), (SweepAxis("bs", ("1",)),), (SweepAxis("", ()),), ("x",)],
}
WORKFLOWS = _models(Workflow, WORKFLOW_VALUES)


@settings(max_examples=800, deadline=None)
@given(WORKFLOWS)
def test_workflow_check_is_the_check_before_its_fast_paths(workflow):
    _same_as_before(workflow, _old_workflow_check)
    assert _outcome(Workflow._step_word_groups, workflow) == _outcome(_old_step_word_groups, workflow)


# --- R2: the script's template filled without Jinja, the step's composition ---------------------------

import jinja2  # noqa: E402
import pytest  # noqa: E402
from strategies import models  # noqa: E402

from hpcwidgets.render import script as script_module, workflow as workflow_module  # noqa: E402
from hpcwidgets.spec import ApptainerRun, Srun  # noqa: E402
from hpcwidgets.spec.argv import model_words  # noqa: E402
from hpcwidgets.spec.charliecloud import ChRun  # noqa: E402

LAYOUT_TEXT = st.lists(st.sampled_from(PIECES + ["\x00", "\x000\x00", "\x001\x00", "%", "%s", "%%", "{{ x }}"]),
                       max_size=6).map("".join)
LAYOUT_VALUE = st.one_of(LAYOUT_TEXT, st.booleans(), st.integers(-3, 3))
TEMPLATE_NAMES = {"job.sh.j2": ("shell", "directives", "header", "title", "version", "modules", "errexit", "nounset",
                                "body"),
                  "jupyter.sh.j2": ("first_line", "runtime_base", "helper", "net_checker", "start", "port_min",
                                    "port_max", "program_hint", "to_node", "loopback", "tunnel", "url",
                                    "idle_minutes", "local_port", "base_max", "fill_user", "tcp_kernels")}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(TEMPLATE_NAMES)), st.data())
def test_a_filled_template_is_what_jinja_renders(name, data):
    values = {n: data.draw(LAYOUT_VALUE, label=n) for n in TEMPLATE_NAMES[name]}
    assert script_module._layout(name) is not None  # the shipped templates take the layout's path
    assert script_module.fill_template(name, **values) == script_module._template(name).render(values)


@pytest.mark.parametrize("name", sorted(TEMPLATE_NAMES))
def test_a_filled_template_still_refuses_a_missing_variable(name):
    values = dict.fromkeys(TEMPLATE_NAMES[name], "x")
    del values[TEMPLATE_NAMES[name][-1]]
    with pytest.raises(jinja2.UndefinedError, match=TEMPLATE_NAMES[name][-1]):
        script_module.fill_template(name, **values)


@pytest.mark.parametrize("value", [None, 1.5, ("a",), Verbatim("a b")])
def test_a_value_of_another_type_is_rendered_by_jinja(value):
    values = dict.fromkeys(TEMPLATE_NAMES["job.sh.j2"], "x") | {"body": value, "modules": value}
    assert script_module.fill_template("job.sh.j2", **values) == script_module._template("job.sh.j2").render(values)


@pytest.mark.parametrize("source, plain", [
    ("a{{ x }}b{% if y %}c{{ y }}{% elif z %}d{% else %}e{{ x }}{% endif %}", True),
    ("{{ x | upper }}", False),
    ("{{ x.y }}", False),
    ("{% if x == 1 %}a{% endif %}", False),
    ("{% for i in x %}{{ i }}{% endfor %}", False),
    ("{% set y = 1 %}{{ y }}", False),
    ("a\x00b{{ x }}", False),
    ("plain text", False),
])
def test_a_layout_is_made_only_of_names_and_tests(source, plain):
    template = script_module._environment().from_string(source)
    layout = script_module.layout_of(template, source)
    assert (layout is not None) is plain
    if plain:
        for x, y, z in [("%s", "", 0), ("\x000\x00", True, 1), (3, "%", False), (False, 0, "z")]:
            assert layout.fill({"x": x, "y": y, "z": z}) == template.render(x=x, y=y, z=z)


# the step: its words composed once and broken into lines by slicing, against the line-by-line walk it replaced

def _walked_step_text(layers, width, indent):
    """The reference: the step's lines built by walking each layer's quoted words (the former step_text)."""
    flat = workflow_module.quote_step_words([word for _, words, _ in layers for word in words])
    quoted = []
    for _, words, _ in layers:
        quoted.append(flat[:len(words)])
        flat = flat[len(words):]
    line = " ".join([" ".join(q) for q in quoted if q])
    if len(line) <= width:
        return line
    lines = []
    carry = ""
    for k, ((_, words, starts), q) in enumerate(zip(layers, quoted)):
        if len(q) == 1 and k + 1 < len(layers):
            carry += q[0] + " "
            continue
        prev = 0
        for cut in sorted(starts):
            if cut > prev:
                lines.append(carry + " ".join(q[prev:cut]))
                carry, prev = "", cut
        if prev < len(q):
            lines.append(carry + " ".join(q[prev:]))
            carry = ""
    if carry:
        lines.append(carry.rstrip())
    return (" \\\n" + indent).join(lines)


def _former_layer_breaks(model, rest, cut):
    """The reference for one layer's line breaks (the former _layer: group starts but the lead, those left)."""
    words, starts, lead = model_words(model, rest)
    if cut:
        del words[len(words) - cut:]
        starts = [s for s in starts if s < len(words)]
    return words, sorted(set(starts) - {lead, 0})


STEP_WORD = st.one_of(TEXT.filter(lambda t: not t.startswith("-")), st.just("--x=1"), st.just("-v"))
WORKFLOW_STEPS = st.builds(
    Workflow,
    srun=st.one_of(st.none(), models(Srun, command=())),
    container=st.one_of(st.none(), models(ApptainerRun, command=()), models(ChRun, command=())),
    launcher=st.one_of(st.none(), models(Torchrun)),
    program=st.lists(STEP_WORD, max_size=3).map(tuple))


@settings(max_examples=300, deadline=None)
@given(WORKFLOW_STEPS, st.integers(0, 120), st.sampled_from(["  ", "    ", "\t"]))
def test_the_step_text_is_the_layer_by_layer_walk(w, width, indent):
    layers = workflow_module.step_layers(w)
    assert workflow_module.step_text(w, width, indent) == _walked_step_text(layers, width, indent)
    assert workflow_module.step_words(layers)[0] == workflow_module.step_argv(w, layers)


@settings(max_examples=200, deadline=None)
@given(WORKFLOW_STEPS)
def test_a_layers_line_breaks_are_its_group_starts_but_the_lead(w):
    inner = model_words(w.launcher)[0] if w.launcher is not None else list(w.program)
    for model, rest, cut in [(w.srun, [], 0), (w.container, inner or None, len(inner) if w.launcher else 0),
                             (w.launcher, None, 0)]:
        if model is not None:
            _, words, breaks = workflow_module._layer(model, rest, cut)
            assert (words, breaks) == _former_layer_breaks(model, rest, cut)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(TEXT, max_size=4).flatmap(
    lambda words: st.tuples(st.just("layer"), st.just(words),
                            st.lists(st.integers(1, max(len(words) - 1, 1)), unique=True).map(
                                lambda b: sorted(x for x in b if x < len(words))))), max_size=4),
    st.integers(0, 40))
def test_one_word_and_empty_layers_break_as_the_walk_does(layers, width):
    assert workflow_module.step_text(None, width, layers=layers) == _walked_step_text(layers, width, "  ")


# --- V1: Spec.problems, the way to each class's compiled field checks (spec/_meta.py) ----------------------------

import pytest  # noqa: E402

from hpcwidgets.spec import all_kinds  # noqa: E402


@pytest.mark.parametrize("kind", sorted(all_kinds()))
def test_problems_compiles_checks_for_the_class_itself_and_keeps_an_override(kind):
    """The first problems() compiles the checks onto the class; a class with its own problems() (a Workflow drops
    the nested container's empty-command problem) keeps it and reaches the checks through super().problems()."""
    cls = all_kinds()[kind]
    own = cls.__dict__.get("problems")
    model = cls(**{f.name: "/x" for f in cls.field_specs() if f.default is dataclasses.MISSING})
    first = model.problems()
    assert "_hpcw_problems" in cls.__dict__
    assert model.problems() == first
    if own is not None and own is not Spec.problems:
        assert cls.__dict__["problems"] is own
    else:
        assert cls.__dict__["problems"] is cls.__dict__["_hpcw_problems"]


# --- R1: the generated argv words, environment fields and line wrapping (spec/argv.py, render/command.py) ----------

from hpcwidgets.render.command import wrap  # noqa: E402
from hpcwidgets.spec.argv import _generic_option, env_assignments  # noqa: E402

COMMANDS = sorted((cls for cls in all_kinds().values() if any(f.info.role == "program" for f in cls.field_specs())),
                  key=lambda cls: cls.__name__)


def _reference_words(m, rest=None):
    """The plain walk over the metadata: every option by the general path, with the model's flag spellings."""
    spelled = m._spelled() if hasattr(m, "_spelled") else {}
    w, starts, pos, lead, r = [], [], [], 0, [] if rest is None else list(rest)
    for f in m.field_specs():
        value, role = getattr(m, f.name), f.info.role
        if role in ("program", "subcommand"):
            words = str(value).split()
            w += words
            lead += len(words)
        elif role == "option" and not f.info.env:
            _generic_option(f, value, w, starts, spelled.get(f.info.flag, f.info.flag))
        elif role == "positional":
            pos.append(value)
        elif role == "rest" and rest is None:
            r = list(value)
    if hasattr(m, "_argv_tail"):
        r = list(m._argv_tail(r)) + r
    pos = [x if x is not None else "" for x in pos] if r else [x for x in pos if x != "" and x is not None]
    if pos:
        starts.append(len(w))
        w += pos
    return w + r, starts, lead


def _reference_env(m):
    out = [(m.env_name(f.info.env), "1" if value is True else str(value))
           for f in m.field_specs() if f.info.env and (value := getattr(m, f.name)) not in ("", None, False, ())]
    return out + (list(m._env_tail()) if hasattr(m, "_env_tail") else [])


HOSTILE = st.sampled_from(["", "a", "-x", "~", "~/d", "a\x00b", "{}", "{0}", "a:b", "a,b", "$HOME", "two words"])
TEXTISH = st.one_of(HOSTILE, TEXT, HOSTILE.map(Verbatim))
ODD = st.sampled_from([None, 0, 1, 7, True, False, 0.0, "", Verbatim(""), (), ("x",), []])
BINDS = st.builds(Bind, TEXTISH, st.one_of(st.just(""), TEXTISH), st.sampled_from(["", "ro", "rw", "ro,image-src=/", ":"]))
ENVS = st.builds(EnvVar, st.one_of(st.sampled_from(["A", "B_1"]), TEXTISH), st.one_of(TEXTISH, st.just("")))


def _field_values(f):
    """A field's default object, values of its own type (plain, hostile, verbatim) and values of the wrong type."""
    own = st.one_of(
        st.just(f.default),
        st.booleans() if f.base_type is bool else st.integers(-2, 300) if f.base_type is int else TEXTISH,
        ODD)
    if not f.is_tuple:
        return own
    items = BINDS if f.base_type is Bind else ENVS if f.base_type is EnvVar else st.one_of(TEXTISH, st.integers(0, 3))
    return st.one_of(st.just(f.default), ODD, st.lists(st.one_of(items, TEXTISH), max_size=3).map(tuple),
                     st.lists(items, min_size=1, max_size=3).map(tuple))


@st.composite
def _command(draw, cls):
    values = {}
    for f in cls.field_specs():
        if f.info.role == "option":
            values[f.name] = draw(_field_values(f))
        elif f.info.role in ("program", "subcommand", "positional"):
            # the default object, an equal copy of it (not the same object), or other text
            same = "".join(list(f.default)) if isinstance(f.default, str) else f.default
            values[f.name] = draw(st.one_of(st.just(f.default), st.just(same), TEXTISH, st.sampled_from([None, 3])))
        elif f.info.role == "rest":
            values[f.name] = draw(st.lists(TEXTISH, max_size=2).map(tuple))
        elif f.name == "option_style":
            values[f.name] = draw(st.sampled_from(["hyphens", "underscores"]))
    return cls(**values)


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  (both paths must fail alike on values no form produces)
        return type(e)


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda cls: cls.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_generated_words_are_the_general_walks(cls, data):
    m = data.draw(_command(cls))
    rest = data.draw(st.sampled_from([None, [], ["python", "t.py"], [""]]))
    assert _outcome(model_words, m, rest) == _outcome(_reference_words, m, rest)
    assert _outcome(env_assignments, m) == _outcome(_reference_env, m)


def _reference_wrap(quoted, group_starts, width, indent):
    line = " ".join(quoted)
    if len(line) <= width or not group_starts:
        return line
    starts = sorted(s for s in set(group_starts) if 1 < s < len(quoted))
    if not starts:
        return line
    chunks, prev = [], 0
    for s in starts:
        chunks.append(" ".join(quoted[prev:s]))
        prev = s
    chunks.append(" ".join(quoted[prev:]))
    return (" \\\n" + indent).join(c for c in chunks if c)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "--long-option=value", "'x y'"]), max_size=8),
       st.lists(st.integers(-1, 9), max_size=6), st.sampled_from([0, 10, 88]))
def test_wrap_breaks_where_the_plain_reading_does(quoted, starts, width):
    assert wrap(quoted, starts, width, "  ") == _reference_wrap(quoted, starts, width, "  ")


# --- P2: a lower-case reference found from its '$', the directive and module lines in one join ----------------------

from hpcwidgets.spec.workflow import _LOWER_REF  # noqa: E402

#: _LOWER_REF as first written, its look-behind leading (a search that tries every position of the text)
_LOWER_REF_LOOKBEHIND_FIRST = re.compile(
    r"(?<!\\)\$(?:\{([a-z_][a-z0-9_]*)[}:#%/^,\[-]|([a-z_][a-z0-9_]*)(?![A-Za-z0-9_]))")
REF_TEXT = st.lists(st.sampled_from(["$", "\\", "\\\\", "{", "}", "a", "lr", "A", "_", "1", ":", "-", "[", "@", " ",
                                     "\n", "é", "\x00", "$$", "\\$", "${", "$a", "'"]), max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(REF_TEXT)
def test_lower_ref_finds_what_the_lookbehind_first_pattern_finds(text):
    def found(pattern):
        return [(m.span(), m.groups()) for m in pattern.finditer(text)]
    assert found(_LOWER_REF) == found(_LOWER_REF_LOOKBEHIND_FIRST)


def test_lower_ref_skips_an_escaped_dollar_and_finds_the_next():
    assert [m.group(2) for m in _LOWER_REF.finditer("\\$a $b \\\\$c")] == ["b"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["#SBATCH ", "module load ", ""]),
       st.lists(st.sampled_from(["", "--nodes=2", "a b", "\n", "{}", "%s", "%", "x\\"]), max_size=6))
def test_each_line_is_the_prefix_and_item_per_line(prefix, items):
    assert script_module._each_line(prefix, items) == "".join(f"{prefix}{item}\n" for item in items)


@settings(max_examples=100, deadline=None)
@given(models(SlurmJob, hostile=False))
def test_a_job_scripts_directives_and_modules_each_take_a_line(job):
    text = script_module.render_job(job)
    directives = "".join(f"#SBATCH {line}\n" for line in script_module.directive_lines(job))
    modules = "".join(f"module load {word}\n" for word in script_module.module_lines(job))
    assert directives in text and modules in text


UNPRINTABLE_TEXT = st.lists(st.sampled_from(["gpu", "a b", "\u00a0", "\u200b", "\u2028", "\x00", "\t", "\n", "\x7f",
                                             "\x1f", "é", "×", "$X", "#", ""]), max_size=5).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(UNPRINTABLE_TEXT, UNPRINTABLE_TEXT.map(Verbatim), st.integers(), st.none()))
def test_one_line_turns_exactly_the_control_characters_into_spaces(value):
    assert script_module.one_line(value) == re.sub(r"[\x00-\x1f\x7f]", " ", str(value))


@settings(max_examples=300, deadline=None)
@given(UNPRINTABLE_TEXT, UNPRINTABLE_TEXT)
def test_job_text_that_is_not_printable_is_checked_as_before_its_printable_test(partition, job_name):
    job = SlurmJob(partition=partition, job_name=job_name, output=partition)
    assert job._check() == _old_job_check(job)


def test_a_rendered_script_keeps_no_run_of_blank_lines():
    job = SlurmJob(job_name="x", setup=("", "", "echo a", "", "", ""))
    assert "\n\n\n" not in script_module.render_job(job)
