"""A :class:`~hpcwidgets.spec.workflow.Workflow` rendered as one complete sbatch script.

Composition happens here, on models: the launcher's argv (or the plain program) is the
container's command (``model_words(container, rest=…)``), and the step's argv is srun's words
followed by the container's. The script is assembled by
:func:`hpcwidgets.render.script.render_script` (one template, ``StrictUndefined``), after the
fail-fast prologue, in this order:

1. preparation commands (e.g. ``[ -f IMAGE ] || apptainer pull …``), in the batch shell;
2. for job arrays, the swept value picked by ``$SLURM_ARRAY_TASK_ID`` (``lr=${lr_values[…]}``), or for a
   grid each variable's value picked by arithmetic on it;
3. when torchrun rendezvous at ``$head_node``, that variable, resolved on the host with
   ``scontrol show hostnames`` (the image usually has no ``scontrol``); see :data:`HEAD_NODE_LINE`;
4. the step, broken over continuation lines at each layer and before each option group when long.
"""

from __future__ import annotations

import re
from itertools import chain
from operator import attrgetter, itemgetter

from ..errors import Problem, ValidationError
from ..spec import comments
from ..spec._meta import Spec
from ..spec._words import Verbatim
from ..spec.apptainer import ApptainerBuild, ApptainerPull
from ..spec.charliecloud import USER_COMMENT, USER_LINE, ChConvert, ChRun
from ..spec.torchrun import HEAD_NODE_LINE, HEAD_NODE_VAR
from ..spec.workflow import Workflow, grid_picks
from .command import WIDTH, command_line, env_assignments, model_words
from .quote import _PLAIN, quote, quote_lines, quote_words, references
from .script import Block, StepBlock, one_line, render_script



Layers = list[tuple[str, list[str], list[int]]]


def _layer(model: Spec, rest: list[str] | None = None, cut: int = 0) -> tuple[str, list[str], list[int]]:
    """One layer: its words (the last ``cut`` dropped: the inner layers' words), and where a continuation
    line may begin within them, in order: each group start but the first option, which stays on the
    program's line (and never the layer's first word, which begins a line anyway)."""
    words, starts, lead = model_words(model, rest)
    if cut:
        del words[len(words) - cut:]
    n = len(words)
    return model.kind, words, [s for s in starts if 0 < s < n and s != lead]  # (model_words gives them in order)


def step_layers(w: Workflow) -> Layers:
    """The step as layers, outermost first: ``(name, own words, line breaks within them)``.

    Each layer's words are the unquoted argv words it contributes (for ``ch-run`` including the
    ``--`` that ends its options); line breaks are indexes into those words where a continuation
    line may begin (each option group but the first, and the first positional). The container's command is
    the launcher's argv (or the program), so the container layer is rendered with that command and
    keeps only its own words.
    """
    layers: Layers = []
    launcher = _layer(w.launcher) if w.launcher is not None else None
    inner = launcher[1] if launcher is not None else list(w.program)
    if w.srun is not None:
        layers.append(_layer(w.srun, []))  # srun's own command gives way to the layers inside it
    if w.container is not None:
        if not inner:
            layers.append(_layer(w.container))
        elif launcher is None:  # the program follows the image on its line, as people write it
            layers.append(_layer(w.container, inner))
        else:
            layers.append(_layer(w.container, inner, cut=len(inner)))
    if launcher is not None:
        layers.append(launcher)
    elif w.container is None and w.program:
        layers.append(("program", list(w.program), []))
    return layers


def step_argv(w: Workflow, layers: Layers | None = None) -> list[str]:
    """The step's complete argument vector (values unquoted; ``$NAME`` references unexpanded)."""
    return list(chain.from_iterable(words for _, words, _ in (layers if layers is not None else step_layers(w))))


def step_words(layers: Layers) -> tuple[list[str], list[int]]:
    """The step's argv and where its lines begin when it is broken: ``0``, then each layer's first word and
    its line breaks, as indexes into the argv. A layer of one word (a bare ``srun``) stays on the line of the
    layer inside it."""
    words: list[str] = []
    cuts = [0]
    carried = True  # the first layer begins the first line
    last = len(layers) - 1
    for k, (_, own, breaks) in enumerate(layers):
        if not own:
            continue
        at = len(words)
        if not carried:
            cuts.append(at)
        carried = len(own) == 1 and k < last
        if breaks:
            cuts += map(at.__add__, breaks)
        words += own
    return words, cuts


#: options whose value is a script: bash -c SCRIPT, python -c CODE, perl -e CODE
_SCRIPT_OPTIONS = frozenset({"-c", "-e"})


def quote_step_words(argv: list[str], quoted: list[str] | None = None) -> list[str]:
    """The step's words as shell words (``quoted``: :func:`quote_words` of them, when the caller has it). A script
    after ``-c`` or ``-e`` that spans lines is written over its lines (:func:`~hpcwidgets.render.quote.quote_lines`),
    to be read as its author wrote it; every other word keeps :func:`quote`'s one-line form, so no other value can
    start a line that looks like a command."""
    quoted = quote_words(argv) if quoted is None else quoted
    return [quote_lines(word) if k and argv[k - 1] in _SCRIPT_OPTIONS else q
            for k, (word, q) in enumerate(zip(argv, quoted))]


def step_text(w: Workflow, width: int = WIDTH, indent: str = "  ", layers: Layers | None = None,
              words: tuple[list[str], list[int]] | None = None) -> str:
    """The step as shell text: one line when it fits in ``width``, else a line per layer and option group.

    ``words`` is :func:`step_words` of the layers, when the caller has it already."""
    argv, cuts = words or step_words(layers if layers is not None else step_layers(w))
    quoted = quote_words(argv)
    line = " ".join(quoted)
    if "\\n" in line:  # a word with a line break (which quote writes as $'\\n'): maybe a script
        quoted = quote_step_words(argv, quoted)
        line = " ".join(quoted)
    if len(line) <= width:
        return line
    # each line's words sliced and joined in C, one slice per pair of consecutive cuts
    return (" \\\n" + indent).join(map(" ".join, map(quoted.__getitem__, map(slice, cuts, [*cuts[1:], None]))))


def describe_step(w: Workflow, layers: Layers | None = None) -> str:
    """A short comment naming the layers, e.g. ``srun → apptainer exec → torchrun (2 nodes × 4)``."""
    parts = ["srun"] if w.srun is not None else []
    if w.container is not None:
        layer = (layers if layers is not None else step_layers(w))[len(parts)]  # the container's layer follows srun's
        action = getattr(w.container, "action", None)
        parts.append(" ".join(layer[1][:1] + ([] if action is None else [action])))
    if w.launcher is not None:
        n, p = w.launcher.nnodes or "1", w.launcher.nproc_per_node or "1"
        parts.append(f"torchrun ({n} node{'s' if n != '1' else ''} × {p} process{'es' if p != '1' else ''})")
    elif w.program:
        parts.append(w.program[0])
    return one_line(comments.STEP + " " + " → ".join(parts))


def prepare_blocks(w: Workflow) -> list[Block]:
    """Preparation commands; downloads and conversions only run when their output is missing."""
    out = []
    for item in w.prepare:
        # environment fields (APPTAINER_CACHEDIR…) are exported above, see workflow_exports()
        line = command_line(item, env_prefix=False, width=WIDTH - 2, indent="    ")
        if isinstance(item, ApptainerPull):
            target = item.image_path()
            pre = f"mkdir -p {quote(item.dir)}\n" if item.dir else ""
            out.append(Block(f"{pre}[ -f {quote(target)} ] ||\n  {line}", comments.PULL))
        elif isinstance(item, ApptainerBuild):
            out.append(Block(f"[ -e {quote(item.output)} ] ||\n  {line}", comments.BUILD))
        elif isinstance(item, ChConvert):
            out.append(Block(f"[ -e {quote(item.output)} ] ||\n  {line}", comments.CONVERT))
        else:
            out.append(Block(line))
    return out


def sweep_block(w: Workflow) -> Block | None:
    """``lr_values=(…)`` and ``lr=${lr_values[$SLURM_ARRAY_TASK_ID]}`` for a job-array sweep (see
    :func:`grid_lines` for a grid)."""
    if not w.sweep_name:
        return None
    axes = [(w.sweep_name, w.sweep_values), *((a.name, a.values) for a in w.sweep_grid)]
    bad = [name for name, _ in axes if not re.fullmatch(r"[a-z_][a-z0-9_]*", str(name))]
    if bad:
        # the names are written into the script as code: refuse rather than quote them
        raise ValidationError([p for p in w.problems() if p.field.startswith(("sweep_name", "sweep_grid"))]
                              or [Problem("sweep_name", f"{bad[0]!r} is not a shell variable name")],
                              subject=w.describe())
    if w.sweep_grid:
        return Block("\n".join(grid_lines(axes)), comments.sweep([name for name, _ in axes]))
    arr = w.sweep_array
    values = " ".join(quote(v) for v in w.sweep_values)
    text = "\n".join([
        f"{arr}=({values})",
        f"{w.sweep_name}=${{{arr}[$SLURM_ARRAY_TASK_ID]}}",
        f'echo "array task $SLURM_ARRAY_TASK_ID: {w.sweep_name}=${w.sweep_name}"',
    ])
    return Block(text, comments.sweep([w.sweep_name]))


def grid_lines(axes: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """A grid's lines: each variable's list, then each variable picked by arithmetic on the task id
    (:func:`~hpcwidgets.spec.workflow.grid_picks`), then one line naming every value the task took."""
    lines = [f"{name}_values=({' '.join(quote(v) for v in values)})" for name, values in axes]
    lines += grid_picks(axes)
    shown = " ".join(f"{name}=${name}" for name, _ in axes)
    lines.append(f'echo "array task $SLURM_ARRAY_TASK_ID: {shown}"')
    return lines


def needs_head_node(w: Workflow) -> bool:
    return w.launcher is not None and w.launcher.uses_head_node


def head_node_needs_export(w: Workflow, argv: list[str] | None = None) -> bool:
    """Whether ``head_node`` must be exported: only when a verbatim word defers its expansion.

    Plain values such as ``$head_node:29500`` are expanded by the batch shell before srun starts,
    so the container and torchrun receive the host name itself and need no variable.
    """
    argv = argv if argv is not None else step_argv(w)
    if set(map(type, argv)) <= _PLAIN:
        return False  # the usual step: no verbatim word at all (checked in C, not word by word)
    return any(isinstance(word, Verbatim) and HEAD_NODE_VAR in references(word) for word in argv)


_SETS_HEAD_NODE = re.compile(rf"^\s*(?:export\s+|declare\s+(?:-\w+\s+)*)?{HEAD_NODE_VAR}=", re.MULTILINE)


def head_node_block(w: Workflow, argv: list[str] | None = None) -> Block | None:
    """The head-node line, unless the script's own set-up lines already set ``head_node`` their way
    (``…-ib0`` for the InfiniBand name, say): writing ours after theirs would replace their value."""
    if not needs_head_node(w) or _SETS_HEAD_NODE.search("\n".join(w.job.setup)):  # (one search over every line)
        return None
    text = HEAD_NODE_LINE + (f"\nexport {HEAD_NODE_VAR}" if head_node_needs_export(w, argv) else "")
    return Block(text, comments.HEAD_NODE)


def script_blocks(w: Workflow) -> list[Block]:
    layers = step_layers(w)  # composed once, for the head-node check, the step text and its comment
    words = step_words(layers)
    blocks = prepare_blocks(w)
    for extra in (sweep_block(w), head_node_block(w, words[0])):
        if extra is not None:
            blocks.append(extra)
    if w.runs_something():
        blocks.append(StepBlock(step_text(w, words=words), describe_step(w, layers)))
    if w.after:
        blocks.append(Block("\n".join(w.after)))
    return blocks


_NAME_VALUE = attrgetter("name", "value")
_NAME = itemgetter(0)


def workflow_exports(w: Workflow) -> list[tuple[str, str]]:
    """Variables exported before the steps: the workflow's own, then the environment fields of the
    preparation commands and the container (e.g. ``APPTAINER_CACHEDIR``); the first of a name wins."""
    pairs = list(map(_NAME_VALUE, w.exports))
    for model in w.prepare:
        pairs += env_assignments(model)
    if w.container is not None:
        pairs += env_assignments(w.container)
    if not w.job.env and len(set(map(_NAME, pairs))) == len(pairs):
        return pairs  # no name twice, none the job's own (the usual case, told in C): nothing to leave out
    seen: set[str] = {e.name for e in w.job.env}
    out = []
    for name, value in pairs:
        if name not in seen:
            seen.add(name)
            out.append((name, value))
    return out


def render_workflow(w: Workflow) -> str:
    """The complete sbatch script of a workflow (shebang, directives, fail-fast prologue, steps)."""
    # ch-run needs $USER: filled in first, as the exports, set-up lines and pulls may name it under set -u
    first = [Block(USER_LINE, USER_COMMENT)] if isinstance(w.container, ChRun) else []
    return render_script(w.job, script_blocks(w), title=w.title, exports=workflow_exports(w), first=first)


__all__ = ["HEAD_NODE_LINE", "describe_step", "grid_lines", "prepare_blocks", "quote_step_words", "render_workflow",
           "script_blocks", "workflow_exports", "step_argv", "step_layers", "step_text", "step_words"]
