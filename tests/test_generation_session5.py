"""Generating for sites the shipped profiles do not cover: AMD and CPU-only example images, GPU jobs routed to
the GPU partition, --profile filling the site's values on the command line, and small CLI defects."""

from __future__ import annotations

import textwrap

import pytest

from hpcwidgets.cli import main
from hpcwidgets.errors import ProfileError
from hpcwidgets.examples import EXAMPLE_IMAGES, LOGIN_HOST_PLACEHOLDER, examples
from hpcwidgets.lint import lint
from hpcwidgets.profiles import SHIPPED_DIR, load_profile, profile_from_toml
from hpcwidgets.run.detect import guess_gpu_vendor, profile_from_scontrol
from hpcwidgets.spec.profile import check_job
from hpcwidgets.spec.slurm import SlurmJob

AMD_SITE = """
name = "amdsite"
login_host = "login.amd.example.org"
runtimes = ["singularity"]
apptainer_binary = "singularity"
scratch = "/scratch/p1"
gpu_vendor = "amd"
default_partition = "small"
default_gpu_partition = "small-g"
account = "project_1"
account_required = true

[[partitions]]
name = "small"
is_default = true
max_time = "3-00:00:00"
cpus_per_node = 128
mem_per_node = "224G"

[[partitions]]
name = "small-g"
max_time = "3-00:00:00"
max_nodes = 4
cpus_per_node = 56
mem_per_node = "480G"
gpus_per_node = 8
"""

CPU_SITE = """
name = "cpusite"
runtimes = ["apptainer"]
scratch = "/scratch/$USER"
gpu_vendor = "none"
default_partition = "short"

[examples]
image = "/scratch/$USER/images/pytorch_cpu.sif"

[[partitions]]
name = "short"
is_default = true
max_time = "04:00:00"
cpus_per_node = 32
mem_per_node = "128G"
"""

#: the Jean Zay-like profile of docs/profiles.md, with and without the routing key
JEAN_ZAY = """
name = "jeanzay"
gpu_vendor = "nvidia"
account = "abc@cpu"
default_partition = "cpu_p1"
default_gpu_partition = "gpu_p13"
{routing}

[[partitions]]
name = "cpu_p1"
is_default = true
max_time = "100:00:00"
cpus_per_node = 40
mem_per_node = "160G"

[[partitions]]
name = "gpu_p13"
account = "abc@v100"
constraint = "v100-32g"
max_time = "100:00:00"
cpus_per_node = 40
mem_per_node = "160G"
gpus_per_node = 4
"""

ACCOUNT_QOS_SITE = """
name = "acctqos"
login_host = "login.acct.example.ca"
runtimes = ["apptainer"]
gpu_vendor = "nvidia"
default_partition = "cpu"
default_gpu_partition = "a100"
account = "def-smith"
account_required = true

[[partitions]]
name = "cpu"
is_default = true
qos = "normal"
max_time = "3-00:00:00"
cpus_per_node = 48

[[partitions]]
name = "a100"
qos = "qos_gpu"
account = "def-smith_gpu"
max_time = "2-00:00:00"
cpus_per_node = 48
gpus_per_node = 4
gpu_types = ["a100"]
"""

IDRIS_SCRIPT = """#!/bin/bash
#SBATCH --job-name=ddp
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=10
#SBATCH -C v100-32g
#SBATCH --qos=qos_gpu-t3
#SBATCH --account=abc@v100
#SBATCH --time=10:00:00
srun python train.py
"""


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def sites(tmp_path, monkeypatch):
    """A profile directory with the test sites, found by name through $HPCW_PROFILE_PATH."""
    for name, text in (("amdsite", AMD_SITE), ("cpusite", CPU_SITE), ("acctqos", ACCOUNT_QOS_SITE),
                       ("jeanzay", JEAN_ZAY.format(routing="gpu_jobs_to_default_gpu_partition = true"))):
        (tmp_path / f"{name}.toml").write_text(text)
    monkeypatch.setenv("HPCW_PROFILE_PATH", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------------------------------------
# 1. the example image follows the GPU vendor
# ------------------------------------------------------------------------------------------------
def test_amd_site_pulls_a_rocm_image_and_runs_it_with_rocm():
    wf = examples(profile_from_toml(AMD_SITE))["single-gpu"].model
    pull = wf.prepare[0]
    assert pull.source == EXAMPLE_IMAGES["amd"][0] and "rocm/pytorch:" in pull.source
    assert "nvcr.io" not in pull.source and ":latest" not in pull.source
    assert pull.dest == "pytorch_rocm6.2.sif" and pull.binary == "singularity"
    assert wf.container.rocm and not wf.container.nv
    # NVIDIA sites keep NGC's CUDA build
    nvidia = examples(load_profile(SHIPPED_DIR / "midway3.toml"))["single-gpu"].model.prepare[0]
    assert nvidia.source == "docker://nvcr.io/nvidia/pytorch:24.05-py3"


def test_cpu_only_site_pulls_the_generic_pytorch_image_and_says_so():
    exs = examples(profile_from_toml(CPU_SITE))
    pull = exs["single-gpu"].model.prepare[0]
    assert pull.source == EXAMPLE_IMAGES["other"][0] and "nvcr.io" not in pull.source
    for name in ("single-gpu", "multi-node-torchrun"):
        assert "a CUDA build that runs on the CPU" in exs[name].description
        assert "examples.image_source" in exs[name].description


def test_profile_image_source_is_used_and_names_the_default_file():
    text = CPU_SITE.replace('image = "/scratch/$USER/images/pytorch_cpu.sif"',
                            'image_source = "docker://example.org/lab/torch-cpu:2.3"')
    profile = profile_from_toml(text)
    ex = examples(profile)["single-gpu"]
    pull = ex.model.prepare[0]
    assert pull.source == "docker://example.org/lab/torch-cpu:2.3"
    assert pull.dest == "torch-cpu_2.3.sif" and pull.dir == profile.image_dir
    assert "CUDA build" not in ex.description


@pytest.mark.parametrize("source, wanted", [
    ("rocm/pytorch:rocm6.2", "needs a scheme"),
    ("docker://rocm/pytorch:latest", "not pinned"),
    ("docker://rocm/pytorch", "not pinned"),
])
def test_profile_check_rejects_unpinned_or_schemeless_sources(source, wanted):
    with pytest.raises(ProfileError) as err:
        profile_from_toml(AMD_SITE + f'\n[examples]\nimage_source = "{source}"\n')
    assert "image_source" in str(err.value) and wanted in str(err.value)


def test_profile_check_rejects_a_cuda_image_on_an_amd_site():
    with pytest.raises(ProfileError) as err:
        profile_from_toml(AMD_SITE + '\n[examples]\nimage_source = "docker://nvcr.io/nvidia/pytorch:24.05-py3"\n')
    assert "CUDA build" in str(err.value) and "rocm" in str(err.value).lower()


def test_a_digest_pins_a_source():
    profile = profile_from_toml(AMD_SITE + '\n[examples]\nimage_source = "docker://rocm/pytorch@sha256:0123abcd"\n')
    assert profile.examples.image_source.endswith("@sha256:0123abcd")


# ------------------------------------------------------------------------------------------------
# 2. GPU jobs without --partition go to the default GPU partition (opt-in)
# ------------------------------------------------------------------------------------------------
def test_routing_key_judges_a_gpu_job_against_the_default_gpu_partition():
    profile = profile_from_toml(JEAN_ZAY.format(routing="gpu_jobs_to_default_gpu_partition = true"))
    job = SlurmJob(gpus_per_node=4, constraint="v100-32g", time="10:00:00")
    assert check_job(profile, job) == []
    # without the key (the default) the same job is judged against the CPU default, as before
    problems = check_job(profile.replace(gpu_jobs_to_default_gpu_partition=False), job)
    assert len(problems) == 1 and "cpu_p1" in problems[0].message
    assert profile.entry_for(job).name == "gpu_p13" and profile.fill_job(job).account == "abc@v100"
    too_many = check_job(profile, job.replace(gpus_per_node=8))
    assert len(too_many) == 1 and "gpu_p13" in too_many[0].message and "default GPU partition" in too_many[0].message
    # a CPU job still goes to the default partition
    assert profile.entry_for(SlurmJob(time="10:00:00")).name == "cpu_p1"


def test_idris_script_lints_clean_with_the_routing_key():
    routed = profile_from_toml(JEAN_ZAY.format(routing="gpu_jobs_to_default_gpu_partition = true"))
    plain = profile_from_toml(JEAN_ZAY.format(routing=""))
    assert "HPC407" in {f.code for f in lint(IDRIS_SCRIPT, plain)}
    assert "HPC407" not in {f.code for f in lint(IDRIS_SCRIPT, routed)}


def test_routing_key_needs_a_default_gpu_partition():
    text = JEAN_ZAY.format(routing="gpu_jobs_to_default_gpu_partition = true").replace(
        'default_gpu_partition = "gpu_p13"\n', "", 1)
    with pytest.raises(ProfileError) as err:
        profile_from_toml(text)
    assert "default_gpu_partition" in str(err.value) and "gpu_p13" in str(err.value)


def test_docs_jean_zay_example_uses_the_routing_key():
    doc = (SHIPPED_DIR.parents[1] / "docs" / "profiles.md").read_text()
    block = doc.split('name = "jeanzay"', 1)[1].split("```", 1)[0]
    assert "gpu_jobs_to_default_gpu_partition = true" in block


# ------------------------------------------------------------------------------------------------
# 3. --profile fills the site's values in sbatch, workflow and apptainer
# ------------------------------------------------------------------------------------------------
def test_sbatch_profile_fills_account_and_qos_of_the_partition(capsys, sites):
    code, out, err = run(capsys, "sbatch", "--profile", "acctqos", "--partition", "a100", "--gpus-per-node", "2",
                         "--time", "01:00:00", "--commands", "srun python x.py")
    assert code == 0, err
    assert "#SBATCH --account=def-smith_gpu" in out and "#SBATCH --qos=qos_gpu" in out
    # values the user typed win
    code, out, err = run(capsys, "sbatch", "--profile", "acctqos", "--partition", "a100", "--account", "mine",
                         "--qos", "debug", "--gpus-per-node", "1", "--time", "01:00:00", "--commands", "srun x")
    assert code == 0, err
    assert "#SBATCH --account=mine" in out and "#SBATCH --qos=debug" in out
    assert "def-smith" not in out and "qos_gpu" not in out


def test_sbatch_profile_puts_a_gpu_job_on_the_gpu_partition(capsys, sites):
    code, out, err = run(capsys, "sbatch", "--profile", "acctqos", "--gpus-per-node", "2", "--time", "01:00:00",
                         "--commands", "srun python x.py")
    assert code == 0, err
    assert "#SBATCH --partition=a100" in out and "#SBATCH --qos=qos_gpu" in out


def test_workflow_profile_fills_the_job(capsys, sites):
    code, out, err = run(capsys, "workflow", "--profile", "amdsite", "--program", "python x.py",
                         "--set", "job.gpus_per_node=1", "--set", "job.time=01:00:00")
    assert code == 0, err
    assert "#SBATCH --partition=small-g" in out and "#SBATCH --account=project_1" in out


def test_apptainer_profile_uses_the_site_program_name(capsys, sites):
    code, out, _ = run(capsys, "apptainer", "exec", "--profile", "amdsite", "--rocm", "img.sif", "python", "x.py")
    assert code == 0 and out.startswith("singularity exec --rocm")
    code, out, _ = run(capsys, "apptainer", "pull", "--profile", "amdsite", "x.sif", "docker://a/b:1")
    assert code == 0 and out.startswith("singularity pull")
    code, out, _ = run(capsys, "apptainer", "exec", "--profile", "amdsite", "--set", "binary=apptainer", "img.sif", "true")
    assert code == 0 and out.startswith("apptainer exec")


# ------------------------------------------------------------------------------------------------
# 4. small CLI defects
# ------------------------------------------------------------------------------------------------
def test_lint_missing_file_is_an_error_not_a_clean_count(capsys, tmp_path):
    missing = tmp_path / "nope.sbatch"
    code, _, err = run(capsys, "lint", str(missing))
    assert code == 2 and str(missing) in err
    assert "0 error(s)" not in err and "file(s)" not in err and len(err.strip().splitlines()) == 1


def test_lint_counts_only_the_files_it_read(capsys, tmp_path):
    good = tmp_path / "ok.sbatch"
    good.write_text("#!/bin/bash\n#SBATCH --time=00:10:00\necho hi\n")
    missing = tmp_path / "nope.sbatch"
    code, _, err = run(capsys, "lint", str(good), str(missing))
    assert code == 2
    summary = err.strip().splitlines()[-1]
    assert "in 1 file(s)" in summary and f"could not be read): {missing}" in summary


def test_profile_check_reports_every_unknown_key_and_problem(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""\
        name = "bad"
        qos_requred = true
        gpu_vendor = "AMD"
        [examples]
        imag = "/a"
        [[partitions]]
        name = "gpu"
        is_default = true
        gpus = 4
        max_time = "48h"
        """))
    code, _, err = run(capsys, "profile", "check", str(bad))
    assert code == 2
    assert "(5 problems)" in err
    for wanted in ("line 2: a profile has no key 'qos_requred'", "line 5: the [examples] table has no key 'imag'",
                   "line 9, partition 'gpu': a partition has no key 'gpus'", "gpu_vendor", "'48h' is not a Slurm time"):
        assert wanted in err


@pytest.mark.parametrize("gpu_type", ["mi100", "mi210", "mi250", "mi250x", "mi300a", "mi300x", "MI250X"])
def test_detect_guesses_amd_from_instinct_gres_types(gpu_type):
    assert guess_gpu_vendor([gpu_type], True) == "amd"


def test_detect_profile_reads_lumi_like_gres_as_amd():
    partitions = "PartitionName=small-g Nodes=nid[005000-005001] MaxTime=3-00:00:00 State=UP TotalNodes=2\n"
    nodes = ("NodeName=nid005000 CPUTot=64 CPUEfctv=56 RealMemory=491520 Gres=gpu:mi250:8 Partitions=small-g\n"
             "NodeName=nid005001 CPUTot=64 CPUEfctv=56 RealMemory=491520 Gres=gpu:mi250:8 Partitions=small-g\n")
    profile = profile_from_scontrol(partitions, nodes)
    assert profile.gpu_vendor == "amd" and profile.partition("small-g").gpu_types == ("mi250",)
    assert guess_gpu_vendor(["a100"], True) == "nvidia" and guess_gpu_vendor([], False) == "none"


def test_jupyter_example_without_login_host_names_a_placeholder_not_localhost():
    ex = examples(profile_from_toml(CPU_SITE))["jupyter"]
    text = ex.render()
    assert f"$USER@{LOGIN_HOST_PLACEHOLDER}" in text and "@localhost" not in text
    assert "login_host" in ex.description and LOGIN_HOST_PLACEHOLDER in ex.description
    assert ex.model.problems() == []


# ------------------------------------------------------------------------------------------------
# 5. Charliecloud on NVIDIA GPUs: the script says what ch-run cannot do
# ------------------------------------------------------------------------------------------------
def test_charliecloud_gpu_examples_on_nvidia_name_ch_fromhost_in_the_script():
    text = CPU_SITE.replace('runtimes = ["apptainer"]', 'runtimes = ["charliecloud"]').replace(
        'gpu_vendor = "none"', 'gpu_vendor = "nvidia"\ndefault_gpu_partition = "gpu"').replace(
        'image = "/scratch/$USER/images/pytorch_cpu.sif"', 'image = "/scratch/$USER/images/pytorch"')
    text += '\n[[partitions]]\nname = "gpu"\nmax_time = "16:00:00"\ncpus_per_node = 64\ngpus_per_node = 4\n'
    exs = examples(profile_from_toml(text))
    for name in ("single-gpu", "multi-node-torchrun", "array-sweep", "charliecloud"):
        assert "ch-fromhost --nvidia" in exs[name].render(), name
    # Apptainer's --nv needs no such step
    generic = examples(load_profile(SHIPPED_DIR / "generic.toml"))["single-gpu"].render()
    assert "ch-fromhost" not in generic and "--nv" in generic


def test_a_charliecloud_gpu_job_injects_the_driver_into_the_directory_it_runs():
    """ch-fromhost cannot write into a SquashFS file: the job unpacks it once and runs the directory."""
    from hpcwidgets.parse import parse_script
    text = examples(load_profile(SHIPPED_DIR / "generic.toml"))["charliecloud"].render()
    wf = parse_script(text)
    fromhost = [p for p in wf.prepare if p.kind == "charliecloud.fromhost"]
    assert fromhost and fromhost[0].image == wf.container.image and not wf.container.image.endswith(".sqfs")


def test_an_example_for_what_the_site_lacks_says_so():
    from hpcwidgets.examples import examples
    from hpcwidgets.profiles import load_profile
    site = load_profile("midway3")
    assert "charliecloud" not in site.runtimes
    assert "lists no Charliecloud" in examples(site)["charliecloud"].description
    assert "lists no Charliecloud" not in examples("local")["charliecloud"].description
    cpu_only = site.replace(partitions=tuple(p.replace(gpus_per_node=0) for p in site.partitions),
                            default_gpu_partition="")
    assert examples(cpu_only)["single-gpu"].description.startswith("No GPU")


def test_jupyter_job_profile_fills_for_the_partition_the_options_choose(capsys, tmp_path, monkeypatch):
    from hpcwidgets.cli import main
    site = tmp_path / "split.toml"
    site.write_text('''name = "split"
login_host = "login.split.example.org"
gpu_vendor = "nvidia"
account = "lab"
default_partition = "cpu"
default_gpu_partition = "a100"
[[partitions]]
name = "cpu"
is_default = true
max_time = "1-00:00:00"
cpus_per_node = 32
[[partitions]]
name = "a100"
account = "lab_gpu"
qos = "qos_gpu"
max_time = "1-00:00:00"
cpus_per_node = 32
gpus_per_node = 4
''')
    assert main(["jupyter-job", "--profile", str(site), "--set", "job.partition=a100", "--set", "job.gpus_per_node=1"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --account=lab_gpu" in out and "#SBATCH --qos=qos_gpu" in out
    assert main(["jupyter-job", "--profile", str(site), "--set", "job.gpus_per_node=1"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --partition=a100" in out and "#SBATCH --account=lab_gpu" in out


def test_a_workflow_built_in_python_is_placed_on_a_site():
    """ClusterProfile.place is what --profile does in the CLI, for models built in Python."""
    import hpcwidgets as hw
    wf = hw.Workflow.multi_node("train.py", nodes=2, gpus_per_node=4, image="$SCRATCH/pytorch.sif",
                                partition="gpu", time="04:00:00", pass_cpus_per_task=False, cpus_per_task=8)
    placed = hw.load_profile("midway3").place(wf)
    assert placed.job.modules == ("apptainer",) and placed.srun.cpus_per_task == 8
    assert "HPC409" not in {f.code for f in hw.lint(hw.render(placed), "midway3")}
    singularity_site = hw.load_profile("midway3").replace(apptainer_binary="singularity")
    assert singularity_site.place(wf).container.binary == "singularity"
