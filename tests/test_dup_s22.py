"""One source for what several places said (session 22).

* A directive without its value (``#SBATCH --account``) is told what the value is and shown one, taken from the
  SlurmJob field's metadata (label, placeholder): each example shown is a value the script reader takes back.
* HPC226 reads the binds APPTAINER_BIND (and the other bind variables) give through ``lint.shell.environment_binds``,
  as HPC204 does.
* HPC204 names the program of the line that mounts the home: Apptainer, Singularity, or ch-run --home.
* The deck's sentence on CPUs and workers agrees with a count of 1: "The 1 CPU of the task is shared by its 1 worker".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpcwidgets import slides
from hpcwidgets.lint import lint
from hpcwidgets.parse import read_script
from hpcwidgets.parse.script import _OTHER_VALUE_EXAMPLES, directive_fields
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.slurm import SlurmJob

ROOT = Path(__file__).resolve().parents[1]
DECK = (slides.SLIDES_DIR / slides.DECK_NAME).read_text(encoding="utf-8")
VALUE = re.compile(r"<!-- hpcw: value [^>\n]*-->([^<\n]*)<!-- hpcw: end -->")


def found(text: str, code: str) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text) if f.code == code]


# ------------------------------------------------------------------------------------------------
# 1 · a missing #SBATCH value, described by the field's metadata
# ------------------------------------------------------------------------------------------------
def _field_options() -> list[tuple[str, str]]:
    """(long option, field) for every option a SlurmJob field holds as written, switches left out."""
    return sorted({(flag, name) for flag, name in directive_fields().items() if flag.startswith("--")
                   and flag == SlurmJob.field_spec(name).info.flag and SlurmJob.field_spec(name).base_type is not bool})


def _missing(flag: str) -> str:
    [(line, message)] = found(f"#!/bin/bash\n#SBATCH {flag}\nsrun hostname\n", "HPC310")
    assert line == 2
    return message


@pytest.mark.parametrize("flag, name", _field_options())
def test_the_example_of_a_missing_value_is_the_fields_placeholder_and_reads_back(flag, name):
    info = SlurmJob.field_spec(name).info
    assert info.placeholder, f"{name} has no placeholder to show as the example of {flag}'s value"
    message = _missing(flag)
    assert message.endswith(f", e.g. {flag}={info.placeholder}"), message
    # the example is a value: the script reader takes it into the field, with no problem
    parsed = read_script(f"#!/bin/bash\n#SBATCH {flag}={info.placeholder}\nsrun hostname\n")
    assert not parsed.problems and found(f"#!/bin/bash\n#SBATCH {flag}={info.placeholder}\n", "HPC310") == []
    assert str(getattr(parsed.job, name)) == info.placeholder


@pytest.mark.parametrize("flag, said", [
    ("--time", "--time needs a value: the time limit, e.g. --time=01:00:00"),
    ("-N", "-N (--nodes) needs a value: the number of nodes, e.g. -N 1"),
    ("--cpus-per-task", "--cpus-per-task needs a value: the number of CPUs per task, e.g. --cpus-per-task=8"),
    ("--qos", "--qos needs a value: the QOS, e.g. --qos=normal"),
    ("--mem", "--mem needs a value: the memory per node, e.g. --mem=16G"),
    ("--mail-type", "--mail-type needs a value: when to send mail, e.g. --mail-type=END,FAIL"),
    ("--mail-user", "--mail-user needs a value: the address for job mail, e.g. --mail-user=you@example.org"),
    ("--gpus-per-node", "--gpus-per-node needs a value: the number of GPUs per node, e.g. --gpus-per-node=1"),
    ("--gres", "--gres needs a value: the generic resources of each node, e.g. --gres=gpu:1"),
    ("--dependency", "--dependency needs a value: the jobs to wait for, e.g. --dependency=afterok:JOBID"),
])
def test_a_missing_value_says_what_the_value_is(flag, said):
    assert _missing(flag) == said


def test_the_other_examples_are_only_for_options_no_field_holds_as_written():
    fields = directive_fields()
    for flag in _OTHER_VALUE_EXAMPLES:
        # --gres: the GPU fields and other_gres make it, so no field's placeholder is its value
        assert flag == "--gres" or flag not in fields, f"{flag}: take its example from {fields[flag]}'s metadata"


# ------------------------------------------------------------------------------------------------
# 2 · the SingularityCE site of the session-21 tests is one file
# ------------------------------------------------------------------------------------------------
def test_the_shared_singularity_site_loads_as_the_tests_describe_it(isolated_profiles):
    site = load_profile(str(ROOT / "tests" / "data" / "profiles" / "lakes.toml"))
    assert site.name == "lakes" and tuple(site.runtimes) == ("singularity",)
    assert site.apptainer_binary == "singularity" and site.account_required
    import test_lessons_g_s21
    import test_workshop_s21
    assert test_lessons_g_s21.SINGULARITY_SITE == test_workshop_s21.SITE_TOML


# ------------------------------------------------------------------------------------------------
# 3 · HPC226 reads the bind variables as HPC204 does
# ------------------------------------------------------------------------------------------------
LOCAL_JOB = """#!/bin/bash
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
SETTING
RUNTIME exec --nv -B /scratch pytorch.sif python train.py --data "$SLURM_TMPDIR/data"
"""


@pytest.mark.parametrize("runtime, setting, reported", [
    ("apptainer", "", True),
    ("apptainer", 'export APPTAINER_BIND="$SLURM_TMPDIR"', False),
    ("apptainer", 'export APPTAINER_BINDPATH="/scratch,$SLURM_TMPDIR"', False),
    ("singularity", 'export SINGULARITY_BIND="$SLURM_TMPDIR"', False),
    ("apptainer", 'APPTAINER_BIND="$SLURM_TMPDIR"', True),  # not exported: apptainer never sees it
])
def test_hpc226_counts_the_binds_the_bind_variables_give(runtime, setting, reported):
    text = LOCAL_JOB.replace("SETTING", setting).replace("RUNTIME", runtime)
    assert bool(found(text, "HPC226")) is reported


def test_hpc226_counts_a_bind_variable_set_for_the_command_alone():
    text = LOCAL_JOB.replace("SETTING\n", "").replace("RUNTIME", 'APPTAINER_BIND="$SLURM_TMPDIR" apptainer')
    assert found(text, "HPC226") == []


# ------------------------------------------------------------------------------------------------
# 4 · HPC204 names the program of the line
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, mounts, keep_out", [
    ("apptainer exec --bind $HOME:/h img_1.0.sif python x.py", "Apptainer", "add --no-home"),
    ("singularity exec --bind $HOME:/h img_1.0.sif python x.py", "Singularity", "add --no-home"),
    ("ch-run --home -b $HOME:/mnt/0 /scratch/img.sqfs -- python /opt/x.py", "ch-run --home", "drop --home"),
])
def test_hpc204_names_the_program_that_mounts_the_home(line, mounts, keep_out):
    [(at, message)] = found(f"#!/bin/bash\n#SBATCH --time=00:10:00\n{line}\n", "HPC204")
    assert at == 3 and "your whole home directory" in message
    assert f"; {mounts} already mounts $HOME:" in message and f"and {keep_out} to keep the rest out" in message


def test_hpc204_on_singularity_does_not_say_apptainer():
    text = "#!/bin/bash\n#SBATCH --time=00:10:00\nsingularity exec --bind $HOME:/h img_1.0.sif python x.py\n"
    [(_, message)] = found(text, "HPC204")
    assert "apptainer" not in message.lower(), message


# ------------------------------------------------------------------------------------------------
# 5 · the deck's CPUs-and-workers sentence on a 1-CPU partition
# ------------------------------------------------------------------------------------------------
def _site(cpus: int) -> str:
    return (f'name = "cpus{cpus}"\ndescription = "a site of the tests: a GPU node with {cpus} CPUs"\n'
            'runtimes = ["apptainer"]\nscratch = "/scratch/one/$USER"\ngpu_vendor = "nvidia"\n\n'
            '[[partitions]]\nname = "gpu"\nis_default = true\nmax_time = "1-00:00:00"\nmax_nodes = 1\n'
            f'cpus_per_node = {cpus}\nmem_per_node = "16G"\ngpus_per_node = 1\n')


@pytest.fixture()
def small_sites(tmp_path, monkeypatch, isolated_profiles) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    for cpus in (1, 2):
        (folder / f"cpus{cpus}.toml").write_text(_site(cpus), encoding="utf-8")
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(folder))
    return folder


def _sentence(text: str) -> str:
    return next(line for line in VALUE.sub(r"\1", text).splitlines() if "of the task" in line and "shared by" in line)


def test_a_1_cpu_partition_reads_the_1_cpu_is_shared_by_its_1_worker(small_sites):
    assert slides.example_values("multi-node-torchrun", "cpus1")["cpus-per-task"] == "1"
    synced = slides.sync_text(DECK, "cpus1")
    assert _sentence(synced) == "- The 1 CPU of the task is shared by its 1 worker (data loaders)"
    assert slides.stale_values(synced, "cpus1") == []
    assert "The 1 CPU of the task is shared" in slides.strip_markers(synced)
    # and back to the deck's own site: "All 32 CPUs … are", as shipped
    assert slides.sync_text(synced) == DECK


def test_two_cpus_keep_all_and_are(small_sites):
    synced = slides.sync_text(DECK, "cpus2")
    assert _sentence(synced) == "- All 2 CPUs of the task are shared by its 1 worker (data loaders)"
    assert slides.sync_text(slides.sync_text(synced, "cpus1"), "cpus2") == synced


CPUS_MARKER = "<!-- hpcw: value multi-node-torchrun cpus-per-task -->"


@pytest.mark.parametrize("right, wrong, said", [
    (f"The {CPUS_MARKER}", f"All {CPUS_MARKER}", "the text says 'All 1 CPU': write 'The 1 CPU'"),
    ("CPU of the task is shared", "CPU of the task are shared", "the text says '1 CPU … are': write 'is'"),
])
def test_a_sentence_that_does_not_agree_with_1_is_reported_and_synced(small_sites, right, wrong, said):
    synced = slides.sync_text(DECK, "cpus1")
    assert synced.count(right) == 1
    bad = synced.replace(right, wrong)
    [problem] = slides.stale_values(bad, "cpus1")
    assert said in problem and "sync --profile cpus1" in problem
    assert slides.sync_text(bad, "cpus1") == synced


@pytest.mark.parametrize("verb, count, want", [
    ("are", "1", "is"), ("is", "4", "are"), ("have", "1", "has"), ("were", "1", "was"), ("is", "1", "is"),
    ("shared", "1", "shared"), ("are", "gpu", "are"),   # a word that is no such verb, a value that is no count
])
def test_count_verb(verb, count, want):
    assert slides.count_verb(verb, count) == want


@pytest.mark.parametrize("word, was, count, want", [
    ("All", "32", "1", "The"), ("all", "4", "1", "the"), ("The", "1", "32", "All"), ("the", "1", "2", "all"),
    ("The", "4", "8", "The"),   # "The 4 GPUs" as written stays while the count is not 1
    ("All", "4", "8", "All"), ("The", "4", "1", "The"), ("Its", "4", "1", "Its"),
])
def test_count_all(word, was, count, want):
    assert slides.count_all(word, was, count) == want
