"""Session 19 (E8): real container jobs from other fields (auditor A1's findings).

- The lexer reads a script whose last line ends in a backslash as bash does: the command ends at the end of the file
  (no HPC000; the script is read back and fixed with that line kept).
- HPC235: a pyxis ``--container-image`` (or ``enroot import docker://``) that writes the registry with ``/`` where
  enroot wants ``#``.
- HPC532: a short command (pwd, ls, nvidia-smi …) continued into lines that each start another one.
- HPC206: an image under $HOME that only ``mpirun``/``mpiexec`` on the host starts.
- HPC207: APPTAINER_TMPDIR / SINGULARITY_TMPDIR under $HOME before a pull or a registry image's run or build.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.parse import parse_job, parse_script
from hpcwidgets.parse.lexer import lex_script
from hpcwidgets.render import render
from hpcwidgets.spec.workflow import Workflow

HEAD = "#!/bin/bash\n#SBATCH --time=00:05:00\n"


def only(text: str, code: str) -> list:
    return [f for f in lint(text) if f.code == code]


# --------------------------------------------------------------------------------------------
# a backslash on the last line

#: LUMI's accelerate example ends so: its last argument's line keeps its backslash, and nothing follows
LAST_LINE_CONTINUED = (HEAD + "#SBATCH --cpus-per-task=56\n#SBATCH --gpus-per-node=8\n"
                       "srun singularity exec hf_env_container.sif \\\n"
                       "    python train.py \\\n"
                       "    --num_workers $(expr ${SLURM_CPUS_PER_TASK} / ${SLURM_GPUS_PER_NODE}) \\\n")


@pytest.mark.parametrize("text, argv", [
    ("echo hello \\\n    world \\\n", ["echo", "hello", "world"]),
    ("echo hello\\\n", ["echo", "hello"]),        # the backslash right after the word
    ('echo "a b"\\\n', ["echo", "a b"]),
    ("srun a \\\n", ["srun", "a"]),
])
def test_a_continuation_on_the_last_line_ends_the_command_at_the_end_of_the_file(text, argv):
    script = lex_script(text)
    assert script.text == text
    (cmd,) = script.code
    assert list(cmd.argv) == argv and cmd.end_line == text.count("\n")


@pytest.mark.parametrize("text", ["echo a && \\\n", "echo a | \\\n", "cat <<EOF \\\n"])
def test_what_bash_refuses_at_the_end_of_the_file_is_still_refused(text):
    """bash stops with 'unexpected end of file' here: the command the operator joins is missing."""
    assert [f.code for f in lint(HEAD + text)] == ["HPC000"]


def test_a_script_ending_in_a_backslash_is_linted_as_a_whole():
    found = lint(LAST_LINE_CONTINUED)
    assert "HPC000" not in [f.code for f in found]
    assert "HPC309" in [f.code for f in found]  # a command-level finding, which HPC000 used to hide
    assert not [f for f in found if "backslash" in f.message]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_reads_such_a_script_too(tmp_path):
    path = tmp_path / "job.sh"
    path.write_text(HEAD + "echo hello \\\n    world \\\n")
    out = subprocess.run(["bash", str(path)], capture_output=True, text=True, check=True)
    assert out.stdout == "hello world\n"


def test_a_script_ending_in_a_backslash_is_read_back_byte_for_byte():
    text = LAST_LINE_CONTINUED
    assert render(parse_script(text), validate=False) == text
    assert render(parse_job(text), validate=False) == text
    loaded = Workflow.from_dict(json.loads(json.dumps(parse_script(text).to_dict())))
    assert render(loaded, validate=False) == text


def test_a_fix_keeps_the_last_lines_backslash():
    last = "    --num_workers $(expr ${SLURM_CPUS_PER_TASK} / ${SLURM_GPUS_PER_NODE}) \\\n"
    fixed, found = fix_script(LAST_LINE_CONTINUED, select="HPC309")  # a fix of one line: the others stay as written
    assert [f.code for f in found] == ["HPC309"] and fixed.endswith("    python train.py \\\n" + last)
    fixed, found = fix_script(LAST_LINE_CONTINUED)  # HPC201 writes the step anew, and keeps what follows it
    assert [f.code for f in found] == ["HPC201", "HPC309"] and fixed.endswith("${SLURM_GPUS_PER_NODE}) \\\n")
    assert not [f for f in lint(fixed) if f.code in ("HPC000", "HPC201", "HPC309")]


# --------------------------------------------------------------------------------------------
# HPC235: the registry written with / for pyxis and enroot

@pytest.mark.parametrize("line, fixed", [
    ("srun --container-image=nvcr.io/nvidia/pytorch:24.05-py3 python train.py",
     "srun --container-image=nvcr.io#nvidia/pytorch:24.05-py3 python train.py"),
    ("srun --container-image nvcr.io/nvidia/pytorch:20.03-py3 --no-container-entrypoint pwd",
     "srun --container-image nvcr.io#nvidia/pytorch:20.03-py3 --no-container-entrypoint pwd"),
    ('srun --container-image="ghcr.io/org/app:1.2" python run.py',
     'srun --container-image="ghcr.io#org/app:1.2" python run.py'),
    ("srun --container-image=me@registry.example.org/team/app:3 ./run",
     "srun --container-image=me@registry.example.org#team/app:3 ./run"),
    ("#SBATCH --container-image=nvcr.io/nvidia/pytorch:24.05-py3",
     "#SBATCH --container-image=nvcr.io#nvidia/pytorch:24.05-py3"),
    ("enroot import docker://nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
     "enroot import docker://nvcr.io#nvidia/cuda:12.4.1-base-ubuntu22.04"),
    # Docker Hub is enroot's default registry: its name is left out rather than set apart
    ("srun --container-image=docker.io/library/ubuntu:22.04 cat /etc/os-release",
     "srun --container-image=library/ubuntu:22.04 cat /etc/os-release"),
])
def test_a_registry_written_with_a_slash_is_reported_and_fixed(line, fixed):
    text = HEAD + line + "\n"
    (finding,) = only(text, "HPC235")
    assert finding.severity == "warning" and "enroot sets the registry apart with #" in finding.message
    image = next(w for w in fixed.split() if w not in line.split()).split("=")[-1].strip('"').split("://")[-1]
    assert finding.message.endswith(image)
    out, _ = fix_script(text, select="HPC235")
    assert out == HEAD + fixed + "\n" and not only(out, "HPC235")


def test_the_message_says_when_credentials_make_the_slash_work():
    (finding,) = only(HEAD + "srun --container-image=nvcr.io/nvidia/pytorch:24.05-py3 python t.py\n", "HPC235")
    assert "on Docker Hub" in finding.message and "credentials file names nvcr.io" in finding.message
    assert finding.message.endswith("write --container-image=nvcr.io#nvidia/pytorch:24.05-py3")


def test_a_registry_with_a_port_is_refused_outright():
    (finding,) = only(HEAD + "srun --container-image=localhost:5000/app:1 ./run\n", "HPC235")
    assert "Invalid image reference" in finding.message and "localhost:5000#app:1" in finding.message


def test_a_multi_line_srun_is_fixed_on_the_line_that_holds_the_image():
    text = HEAD + "srun --nodes=1 \\\n  --container-image=nvcr.io/nvidia/pytorch:24.05-py3 \\\n  python t.py\n"
    (finding,) = only(text, "HPC235")
    assert finding.line == 3 and finding.fix.start == finding.fix.end == 4
    assert fix_script(text, select="HPC235")[0] == text.replace("nvcr.io/", "nvcr.io#")


def test_an_image_from_a_variable_is_reported_without_a_fix():
    """The variable may serve apptainer too, where docker://nvcr.io/… is right: only the message says what to write."""
    text = HEAD + "IMG=ghcr.io/org/app:1.0\nsrun --container-image=$IMG python t.py\n"
    (finding,) = only(text, "HPC235")
    assert finding.line == 4 and finding.fix is None and "ghcr.io#org/app:1.0" in finding.message


@pytest.mark.parametrize("line", [
    "srun --container-image=nvcr.io#nvidia/pytorch:24.05-py3 python t.py",
    "srun --container-image=nvidia/cuda:12.4.1-base-ubuntu22.04 nvidia-smi",  # Docker Hub
    "srun --container-image=ubuntu:22.04 cat /etc/os-release",
    "srun --container-image=/scratch/images/pytorch.sqsh python t.py",
    "srun --container-image=./pytorch.sqsh python t.py",
    "srun --container-image=$REGISTRY/org/app:1.0 python t.py",               # the registry comes with the job
    "enroot import docker://nvcr.io#nvidia/pytorch:24.05-py3",
    "apptainer pull pytorch.sif docker://nvcr.io/nvidia/pytorch:24.05-py3",  # right for apptainer
    "srun apptainer exec docker://ghcr.io/org/app:1.0 python t.py",
])
def test_image_names_enroot_reads_as_meant_are_left_alone(line):
    assert not only(HEAD + line + "\n", "HPC235")


# --------------------------------------------------------------------------------------------
# HPC532: a short command continued into lines that start others

#: the auditor's minimal case, from a pyxis quick-start snippet
PYXIS_DIAGNOSTICS = (HEAD + "srun --container-image=/scratch/img/pytorch.sqsh \\\n"
                     "pwd \\\nls \\\nnvidia-smi \\\ndf -h \\\nls -la /\n")


def test_a_launcher_continued_into_diagnostic_commands_is_reported():
    (finding,) = only(PYXIS_DIAGNOSTICS, "HPC532")
    assert finding.line == 5 and finding.severity == "error"
    assert "lines 5–8 start ls, nvidia-smi, df, ls" in finding.message
    assert "part of the pwd command on line 4" in finding.message
    assert "bash -c 'pwd; ls; nvidia-smi; df -h; ls -la /'" in finding.message


@pytest.mark.parametrize("text, line, words", [
    ("hostname \\\n  date \\\n  nvidia-smi\n", 4, "lines 4–5 start date, nvidia-smi"),
    ('cd "$SLURM_SUBMIT_DIR" \\\nls\n', 4, "line 4 starts ls, but line 3 ends with a backslash"),
    ("apptainer exec --nv img.sif \\\n  nvidia-smi \\\n  hostname\n", 5, "line 5 starts hostname"),
    ("srun --ntasks=2 hostname \\\n  date\n", 4, "part of the hostname command on line 3"),
])
def test_other_short_commands_joined_so_are_reported(text, line, words):
    (finding,) = only(HEAD + text, "HPC532")
    assert finding.line == line and words in finding.message


def test_without_a_launcher_no_bash_c_is_suggested():
    (finding,) = only(HEAD + "hostname \\\n  date\n", "HPC532")
    assert "bash -c" not in finding.message


@pytest.mark.parametrize("text", [
    "srun \\\n  python train.py\n",
    "apptainer exec img.sif \\\n  python train.py --epochs 1\n",
    "srun \\\n  hostname\n",
    "srun bash -c \\\n  'pwd; ls'\n",
    "find . -name '*.log' | xargs \\\n  ls -la\n",
    "time \\\n  ls\n",
    "env \\\n  ls\n",
    "env OMP_NUM_THREADS=1 \\\n  nvidia-smi\n",
    "timeout 10 \\\n  nvidia-smi\n",
    "parallel -j 4 \\\n  echo ::: a b\n",
    "mpirun -np 4 \\\n  hostname\n",
    "srun torchrun --nproc-per-node=4 \\\n  ls\n",
    "mytool --cmd \\\n  ls\n",                        # an option's value on its own line
    "mytool --cmd ls \\\n  --verbose\n",
    "ls -la \\\n  /scratch \\\n  date\n",               # one joined line is no command
    "nvidia-smi \\\n  --query-gpu=name \\\n  ls\n",
    "echo Running on \\\n  hostname\n",                # a printer's text
    "module load gcc \\\n  ls\n",
    "pwd \\\n  'ls'\n",                                # quoted: meant as an argument
])
def test_launchers_runners_and_arguments_are_left_alone(text):
    assert not only(HEAD + text, "HPC532")


def test_the_same_program_twice_keeps_its_own_message():
    (finding,) = only(HEAD + "ls \\\n  ls -la\n", "HPC532")
    assert "this ls never runs" in finding.message


# --------------------------------------------------------------------------------------------
# HPC206: an image under $HOME that mpirun on the host starts

def test_an_image_under_home_started_by_mpiexec_is_reported():
    text = (HEAD + "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\nSIF_PATH=\"$HOME/openfoam.sif\"\n"
            "mpiexec --mca btl_tcp_if_include eth0 -np 4 singularity exec ${SIF_PATH} foamRun -parallel\n")
    (finding,) = only(text, "HPC206")
    assert finding.line == 6 and "$HOME/openfoam.sif" in finding.message and "every rank mpiexec" in finding.message


@pytest.mark.parametrize("launch", [
    "time mpirun -n 8 apptainer exec ~/images/solver.sif /opt/app/solver",
    "for i in 1 2; do mpirun -n 8 apptainer exec $HOME/solver.sif /opt/app/solver; done",
])
def test_mpirun_under_a_wrapper_or_in_a_loop_counts_too(launch):
    assert len(only(HEAD + launch + "\n", "HPC206")) == 1


@pytest.mark.parametrize("launch", [
    "mpirun -n 8 apptainer exec \"$SCRATCH/solver.sif\" /opt/app/solver",
    "srun --mpi=pmix apptainer exec \"$SCRATCH/solver.sif\" /opt/app/solver",
    "mpirun -n 8 /opt/app/solver --input $HOME/case.sif",  # no container
])
def test_images_off_home_and_no_container_are_left_alone(launch):
    assert not only(HEAD + launch + "\n", "HPC206")


def test_a_serial_step_and_an_mpiexec_step_each_report_once():
    text = HEAD + "SIF=$HOME/of.sif\nsingularity exec $SIF blockMesh\nmpiexec -np 4 singularity exec $SIF foamRun\n"
    assert [f.line for f in only(text, "HPC206")] == [4, 5]


# --------------------------------------------------------------------------------------------
# HPC207: the temporary folder under $HOME

PULL = "singularity pull img.sif docker://ubuntu:22.04\n"


def test_a_tmpdir_under_home_before_a_pull_is_reported_at_its_assignment():
    text = HEAD + "export SINGULARITY_TMPDIR=${HOME}/tmpnf\nexport SINGULARITY_CACHEDIR=/scratch/$USER/cache\n" + PULL
    (finding,) = only(text, "HPC207")
    assert finding.line == 3 and "SINGULARITY_TMPDIR=${HOME}/tmpnf is under $HOME" in finding.message
    assert "a folder on scratch" in finding.message


@pytest.mark.parametrize("text, line", [
    ("export APPTAINER_TMPDIR=$HOME/tmp APPTAINER_CACHEDIR=$SCRATCH/c\n"
     "apptainer build out.sif docker://ubuntu:22.04\n", 3),
    ("export APPTAINER_CACHEDIR=$SCRATCH/c\nAPPTAINER_TMPDIR=~/tmp apptainer pull --disable-cache x.sif "
     "docker://ubuntu:22.04\n", 4),
    ("export APPTAINER_CACHEDIR=$SCRATCH/c\nexport APPTAINER_TMPDIR=/home/$USER/t\n"
     "apptainer exec docker://ubuntu:22.04 cat /etc/os-release\n", 4),
])
def test_tmpdir_under_home_before_a_build_run_or_cacheless_pull(text, line):
    assert [f.line for f in only(HEAD + text, "HPC207")] == [line]


def test_one_assignment_is_reported_once_for_several_pulls():
    text = (HEAD + "export SINGULARITY_TMPDIR=$HOME/t SINGULARITY_CACHEDIR=$SCRATCH/c\n" + PULL
            + "singularity pull b.sif docker://debian:12\n")
    assert [f.line for f in only(text, "HPC207")] == [3]


@pytest.mark.parametrize("text", [
    "export SINGULARITY_TMPDIR=$SCRATCH/tmp SINGULARITY_CACHEDIR=$SCRATCH/c\n" + PULL,
    # SingularityCE reads only SINGULARITY_TMPDIR
    "export APPTAINER_TMPDIR=$HOME/tmp SINGULARITY_CACHEDIR=$SCRATCH/c\n" + PULL,
    # no pull or registry image: nothing is unpacked there
    "export APPTAINER_TMPDIR=$HOME/tmp\napptainer exec \"$SCRATCH/img.sif\" python t.py\n",
    # Nextflow pulls for itself: out of the rule's reach
    "export NXF_SINGULARITY_CACHEDIR=$HOME/nxf\nnextflow run nf-core/rnaseq -profile singularity\n",
])
def test_tmpdirs_off_home_or_without_a_fetch_are_left_alone(text):
    assert not only(HEAD + text, "HPC207")
