"""Session 21's rules that read the job's environment and the site: a plain CUDA_VISIBLE_DEVICES=list where Slurm
exported the variable (HPC513); module load apptainer where the profile's [modules] table names the site's runtime
modules and not that one (HPC414, and HPC409 for a module loaded in the place of the site's); binds that
APPTAINER_BIND and SINGULARITY_BIND add (HPC204, through lint.shell.environment_binds)."""

from __future__ import annotations


import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import Context, lint
from hpcwidgets.lint.catalogue import containers
from hpcwidgets.lint.shell import environment_binds
from hpcwidgets.parse.script import read_script
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.profile import ClusterProfile, Module


def found(text: str, code: str, profile=None) -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile) if f.code == code]


# --- 1. HPC513: a plain assignment to the GPU variable Slurm exported ----------------------------------------------

GPU_JOB = """#!/bin/bash
#SBATCH --gres=gpu:4
#SBATCH --time=01:00:00
SETTING
python train.py
"""


@pytest.mark.parametrize("setting", ["CUDA_VISIBLE_DEVICES=0,1", "ROCR_VISIBLE_DEVICES=0,1",
                                     "declare -x CUDA_VISIBLE_DEVICES=0,1", "readonly CUDA_VISIBLE_DEVICES=0,1"])
def test_a_plain_assignment_to_slurms_gpu_variable_is_read_as_export(setting):
    [(line, message)] = found(GPU_JOB.replace("SETTING", setting), "HPC513")
    name = setting.split()[-1].split("=")[0]
    assert line == 4 and f"{name}=0,1" in message
    assert "names 2 GPUs but the job requests 4 per node" in message and message.endswith("remove the line")
    if setting.startswith(name):  # without export: the message says why it counts
        assert "no export, but Slurm's variable is in the job's environment" in message


def test_an_exported_list_is_reported_as_before():
    [(line, message)] = found(GPU_JOB.replace("SETTING", "export CUDA_VISIBLE_DEVICES=0,1"), "HPC513")
    assert line == 4 and "no export" not in message and message.endswith("remove the line")


@pytest.mark.parametrize("setting", [
    "HIP_VISIBLE_DEVICES=0",                                     # Slurm does not set it and the script never exports it
    "unset CUDA_VISIBLE_DEVICES\nCUDA_VISIBLE_DEVICES=0,1",      # unset first: a shell variable of its own now
    "export -n CUDA_VISIBLE_DEVICES\nCUDA_VISIBLE_DEVICES=0,1",  # no longer exported
    "declare +x CUDA_VISIBLE_DEVICES=0,1",
    "CUDA_VISIBLE_DEVICES=0,1,2,3",                              # as many as the job has
])
def test_a_variable_that_is_not_exported_or_lists_the_jobs_gpus_is_left_alone(setting):
    assert found(GPU_JOB.replace("SETTING", setting), "HPC513") == []


def test_without_gpus_slurm_sets_nothing_and_nothing_is_read():
    text = GPU_JOB.replace("#SBATCH --gres=gpu:4\n", "").replace("SETTING", "CUDA_VISIBLE_DEVICES=0,1")
    assert found(text, "HPC513") == []


def test_a_variable_the_script_exports_first_is_read_when_assigned_later():
    text = GPU_JOB.replace("SETTING", "export HIP_VISIBLE_DEVICES\nHIP_VISIBLE_DEVICES=0")
    [(line, message)] = found(text, "HPC513")
    assert line == 5 and "HIP_VISIBLE_DEVICES=0 (no export, but line 4 exports it, so every later" in message
    assert "names 1 GPU but the job requests 4 per node" in message


def test_a_plain_per_task_value_is_the_same_in_every_task():
    text = GPU_JOB.replace("SETTING\npython train.py", "ROCR_VISIBLE_DEVICES=$SLURM_LOCALID\n"
                           "srun --ntasks-per-node=1 torchrun --nproc-per-node=4 train.py")
    [(line, message)] = found(text, "HPC513")
    assert line == 4 and "is ROCR_VISIBLE_DEVICES=0 in every task" in message


def test_one_gpu_per_background_run_by_plain_assignments_is_left_alone():
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:2\nCUDA_VISIBLE_DEVICES=0\npython a.py &\n"
            "CUDA_VISIBLE_DEVICES=1\npython b.py &\nwait\n")
    assert found(text, "HPC513") == []


# --- 2. HPC414 and HPC409: a module named for a program the site lacks ----------------------------------------------

def singularity_site(modules=(Module(purpose="singularity", name="singularity"),
                              Module(purpose="cuda", name="cuda/12.1.1"))) -> ClusterProfile:
    """A SingularityCE site like the workshop's: its [modules] table names the runtime's module."""
    return ClusterProfile(name="singsite", runtimes=("singularity",), apptainer_binary="singularity",
                          modules=tuple(modules), partitions=load_profile("generic").partitions)


MODULE_JOB = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=01:00:00
module load MODULE
PROGRAM exec --nv pytorch.sif python train.py
"""


def job(module: str, program: str = "apptainer") -> str:
    return MODULE_JOB.replace("MODULE", module).replace("PROGRAM", program)


@pytest.mark.parametrize("module", ["apptainer", "apptainer/1.3.4"])
def test_module_load_apptainer_is_reported_where_the_site_lists_other_runtime_modules(module):
    [finding] = [f for f in lint(job(module), singularity_site()) if f.code == "HPC414"]
    assert finding.line == 6
    assert f"module load {module} (line 5) names a module the profile singsite does not list" in finding.message
    assert "apptainer: command not found" in finding.message and "load singularity" in finding.message
    assert (finding.fix.start, finding.fix.text) == (5, "module load singularity")


def test_lint_fix_loads_the_sites_module_and_calls_its_program():
    fixed, done = fix_script(job("apptainer"), singularity_site())
    assert "module load singularity\nsingularity exec --nv pytorch.sif" in fixed
    assert [f.code for f in done].count("HPC414") == 2
    assert [f.code for f in lint(fixed, singularity_site()) if f.code in ("HPC409", "HPC414")] == []


@pytest.mark.parametrize("modules", [(), (Module(purpose="cuda", name="cuda/12.1.1"),)])
def test_a_profile_that_names_no_runtime_module_says_nothing_about_the_load(modules):
    assert found(job("apptainer"), "HPC414", singularity_site(modules)) == []


def test_a_module_the_profile_lists_is_believed():
    modules = (Module(purpose="singularity", name="singularity"), Module(purpose="apptainer", name="apptainer"))
    assert found(job("apptainer"), "HPC414", singularity_site(modules)) == []


def test_a_script_that_looks_for_the_program_still_knows_better():
    text = job("apptainer").replace("module load apptainer\n", "module load apptainer\ncommand -v apptainer\n")
    assert found(text, "HPC414", singularity_site()) == []


def test_the_auditors_script_and_profile(monkeypatch, tmp_path):
    (tmp_path / "lakes.toml").write_text(
        'name = "lakes"\nruntimes = ["singularity"]\napptainer_binary = "singularity"\ngpu_vendor = "nvidia"\n'
        '[modules]\nsingularity = "singularity"\ncuda = "cuda/12.1.1"\n'
        '[[partitions]]\nname = "spgpu"\nis_default = true\nmax_time = "14-00:00:00"\ncpus_per_node = 32\n'
        'mem_per_node = "372G"\ngpus_per_node = 8\n')
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    text = ("#!/bin/bash\n#SBATCH --partition=spgpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=01:00:00\n"
            "#SBATCH --mem=16G\n\nmodule load apptainer\napptainer exec --nv pytorch_24.05.sif python train.py\n")
    [(line, message)] = found(text, "HPC414", "lakes")
    assert line == 8 and "module load apptainer (line 7)" in message


def test_hpc409_replaces_a_module_the_site_lacks_instead_of_adding_one():
    [finding] = [f for f in lint(job("apptainer", "singularity"), singularity_site()) if f.code == "HPC409"]
    assert "loads apptainer (line 5) in its place, a module the profile singsite does not list" in finding.message
    assert (finding.fix.start, finding.fix.end, finding.fix.text) == (5, 5, "module load singularity")
    assert found(job("apptainer", "singularity"), "HPC414", singularity_site()) == []


def test_hpc409_still_takes_a_module_named_for_the_program():
    assert found(job("singularity/3.6.1", "singularity"), "HPC409", singularity_site()) == []
    assert found(job("singularity/3.6.1", "singularity"), "HPC409", load_profile("generic")) == []
    [(line, message)] = found(job("gcc", "singularity"), "HPC409", singularity_site())
    assert line == 6 and "does not load it" in message


# --- 3. HPC204: the binds APPTAINER_BIND and SINGULARITY_BIND add ---------------------------------------------------

def binds_of(text: str) -> list[tuple[str, int, str]]:
    ctx = Context(read_script(text))
    return [(name, line, b.to_token()) for step, c in containers(ctx) for name, line, b in environment_binds(ctx, step, c)]


BIND_JOB = """#!/bin/bash
#SBATCH --gres=gpu:1
SETTING
RUNTIME exec --nv pytorch.sif python train.py
"""


def bind_job(setting: str, runtime: str = "apptainer") -> str:
    return BIND_JOB.replace("SETTING", setting).replace("RUNTIME", runtime)


def test_environment_binds_reads_every_entry_of_the_exported_variables():
    assert binds_of(bind_job('export APPTAINER_BIND="$SCRATCH/data:/data,/"')) == [
        ("APPTAINER_BIND", 3, "$SCRATCH/data:/data"), ("APPTAINER_BIND", 3, "/")]
    assert binds_of(bind_job("export SINGULARITY_BIND=~", "singularity")) == [("SINGULARITY_BIND", 3, "$HOME")]
    assert binds_of(bind_job('export SINGULARITY_BIND="~"', "singularity")) == [("SINGULARITY_BIND", 3, "~")]


def test_environment_binds_for_one_command_and_through_srun():
    text = "#!/bin/bash\nAPPTAINER_BIND=/ apptainer exec pytorch.sif python train.py\n"
    assert binds_of(text) == [("APPTAINER_BIND", 2, "/")]
    text = "#!/bin/bash\nexport APPTAINER_BIND=/\nsrun --export=NONE apptainer exec pytorch.sif python train.py\n"
    assert binds_of(text) == []


def test_environment_binds_reads_only_what_the_runtime_is_given():
    assert binds_of(bind_job("APPTAINER_BIND=/")) == []  # not exported: apptainer never sees it
    assert binds_of("#!/bin/bash\nexport APPTAINER_BIND=/etc\nch-run ./img -- python train.py\n") == []  # ch-run


@pytest.mark.parametrize("setting, runtime, shown", [
    ("export APPTAINER_BIND=/", "apptainer", "APPTAINER_BIND binds /"),
    ('export APPTAINER_BIND="$SCRATCH/data:/data,/etc"', "apptainer", "APPTAINER_BIND binds /etc"),
    ("export SINGULARITY_BIND=$HOME:/h", "singularity", "SINGULARITY_BIND binds $HOME:/h"),
])
def test_hpc204_reads_the_bind_variables(setting, runtime, shown):
    [(line, message)] = found(bind_job(setting, runtime), "HPC204")
    assert line == 3 and message.startswith(shown)


def test_hpc204_reports_an_exported_bind_once_for_all_its_steps():
    text = bind_job("export APPTAINER_BIND=/") + "srun apptainer exec pytorch.sif python eval.py\n"
    assert [line for line, _ in found(text, "HPC204")] == [3]


@pytest.mark.parametrize("setting", ["export APPTAINER_BIND=$HOME",  # Apptainer mounts $HOME there anyway
                                     'export APPTAINER_BIND="$SCRATCH/data:/data"', "APPTAINER_BIND=/",
                                     'export APPTAINER_BIND="~"'])
def test_hpc204_leaves_harmless_or_unread_bind_variables_alone(setting):
    assert found(bind_job(setting), "HPC204") == []


def test_hpc204_reports_the_home_bound_by_the_variable_under_no_home():
    [(line, message)] = found(bind_job("export APPTAINER_BIND=$HOME").replace("--nv", "--nv --no-home"), "HPC204")
    assert line == 3 and "your whole home directory" in message
