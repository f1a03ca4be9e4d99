"""Rules for misses found in general HPC scripts: a job that submits itself
again while its #SBATCH --dependency names an old job (HPC325) and a fixed job id in #SBATCH --dependency at all
(HPC326), a backslash where a pipe was meant (HPC532), and Open MPI 5 started by srun under a site MpiDefault that
is not PMIx (HPC135, with the profile's mpi_default)."""

from __future__ import annotations

from importlib.resources import files

import pytest

from hpcwidgets.errors import ProfileError
from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint
from hpcwidgets.profiles import load_profile


def found(text: str, code: str, profile=None, path: str = "") -> list[tuple[int, str]]:
    return [(f.line, f.message) for f in lint(text, profile, path=path) if f.code == code]


# --- HPC325 / HPC326: a fixed job id in #SBATCH --dependency ---------------------------------------------------

#: audit13/a4 scripts/48 (ShiganChu/Bluebottle_pointParticle submit-restart.sh): the resubmission comes before the run
BLUEBOTTLE = """#!/bin/sh
# source: ShiganChu/Bluebottle_pointParticle submit-restart.sh
#
#SBATCH --partition=devel
#SBATCH --gres=gpu:1
#SBATCH --job-name=bb-point
#SBATCH --dependency=afterok:23929
sleep 10
./build-restart.sh $SLURM_JOB_NODELIST $SLURM_JOB_NAME $SLURM_JOB_ID
sbatch submit-restart.sh
srun ./bluebottle -r
"""

#: audit13/a4 repro/r7
MD_CHAIN = """#!/bin/sh
#SBATCH --job-name=md-chain
#SBATCH --time=24:00:00
#SBATCH --dependency=afterok:23929
sbatch r7-self-resubmit-no-dependency.sh
srun ./md -restart
"""

HEAD = "#!/bin/bash\n#SBATCH --time=1:00:00\n#SBATCH --dependency=afterok:23929\n"


def test_the_audited_chain_is_reported_at_its_sbatch_line_when_the_file_is_known():
    ((line, message),) = found(BLUEBOTTLE, "HPC325", path="/home/u/run/submit-restart.sh")
    assert line == 10 and "job 23929" in message and "line 7" in message and "afterany:$SLURM_JOB_ID" in message
    assert [h[0] for h in found(MD_CHAIN, "HPC325", path="repro/r7-self-resubmit-no-dependency.sh")] == [5]
    assert not found(BLUEBOTTLE, "HPC326", path="/home/u/run/submit-restart.sh")  # one finding, HPC325's


def test_without_the_file_name_the_fixed_job_id_is_still_reported():
    assert not found(BLUEBOTTLE, "HPC325")
    ((line, message),) = found(BLUEBOTTLE, "HPC326")
    assert line == 7 and "job 23929" in message and "only right for one submission" in message


@pytest.mark.parametrize("body, line", [
    ('sbatch "$0"\nsrun ./md\n', 4),
    ("sbatch $0\nsrun ./md\n", 4),
    ("sbatch ${BASH_SOURCE[0]}\nsrun ./md\n", 4),
    ('SELF="$0"\nsbatch --parsable "$SELF"\nsrun ./md\n', 5),
    ('NEXT=$(sbatch --parsable "$0")\nsrun ./md\n', 4),                                    # in a substitution
    ('resubmit() {\n  sbatch "$0"\n}\ntrap resubmit USR1\nsrun ./md &\nwait\n', 5),         # in a requeue handler
    ("if [ ! -f done ]; then\n  sbatch -J md2 \"$0\"\nfi\nsrun ./md\n", 5),
    ("CMD=$(scontrol show job \"$SLURM_JOB_ID\" | awk -F= '/Command=/{print $2}')\nsbatch \"$CMD\"\nsrun ./md\n", 5),
    ("sbatch job.sh\nsrun ./md\n", 4),                                                     # the script's own name
    ('sbatch "$SLURM_SUBMIT_DIR/job.sh"\nsrun ./md\n', 4),
])
def test_ways_a_job_submits_itself_again(body, line):
    hits = found(HEAD + body, "HPC325", path="/home/u/job.sh")
    assert [h[0] for h in hits] == [line]


@pytest.mark.parametrize("body", [
    'sbatch --dependency=afterany:"$SLURM_JOB_ID" "$0"\n',   # its own dependency wins over the #SBATCH line
    'sbatch -d afterany:$SLURM_JOB_ID "$0"\n',
    'sbatch -dafterok:$SLURM_JOB_ID "$0"\n',
    'sbatch --depend=afterok:$SLURM_JOB_ID "$0"\n',         # an abbreviation sbatch reads as --dependency
    'export SBATCH_DEPENDENCY=afterany:$SLURM_JOB_ID\nsbatch "$0"\n',
    'sbatch --wrap "$0"\n',
    "sbatch postprocess.sh\n",                               # another script
    "sbatch ../other/job.sh\n",                              # the same name in another folder
])
def test_submissions_that_are_not_the_same_job_or_set_their_own_dependency(body):
    assert not found(HEAD + body + "srun ./md\n", "HPC325", path="/home/u/job.sh")


def test_a_resubmission_without_a_fixed_dependency_is_not_this_rule():
    text = "#!/bin/bash\n#SBATCH --dependency=singleton\n#SBATCH --job-name=md\nsbatch \"$0\"\nsrun ./md\n"
    assert not found(text, "HPC325") and not found(text, "HPC326")


def test_the_fix_makes_the_copy_wait_for_the_running_job():
    text = HEAD + 'NEXT=$(sbatch --parsable "$0")\nsrun ./md\n'
    fixed, done = fix_script(text)
    assert 'NEXT=$(sbatch --dependency=afterany:"$SLURM_JOB_ID" --parsable "$0")' in fixed
    assert "HPC325" in {f.code for f in done} and not found(fixed, "HPC325")


@pytest.mark.parametrize("directive, ids", [
    ("--dependency=afterok:23929", "job 23929"),
    ("-d afterany:12:13", "jobs 12, 13"),
    ("--dependency=afterok:12_*,afterany:13+5", "jobs 12, 13"),
    ("--dependency=afterok:12?afternotok:14", "jobs 12, 14"),
    ("--dependency=23929", "job 23929"),                     # the old form: a bare job id
])
def test_fixed_job_ids_in_the_dependency(directive, ids):
    ((line, message),) = found(f"#!/bin/bash\n#SBATCH {directive}\npython post.py\n", "HPC326")
    assert line == 2 and ids in message


@pytest.mark.parametrize("directive", [
    "--dependency=singleton", "--dependency=afterok:$JOB",   # $JOB is HPC305's: sbatch does not expand it
])
def test_dependencies_without_a_fixed_job_id(directive):
    assert not found(f"#!/bin/bash\n#SBATCH {directive}\n#SBATCH -J post\npython post.py\n", "HPC326")


def test_a_dependency_line_sbatch_does_not_read_is_not_reported_again():
    assert not found("#!/bin/bash\npython a.py\n#SBATCH --dependency=afterok:1\n", "HPC326")  # HPC501's


# --- HPC532: a backslash where a pipe was meant ------------------------------------------------------------------

#: audit13/a4 scripts/39 (TomJKono/SchwarzLab-Slurm task_arrays/task_array_example_2.sh), abridged to its commands
SAMTOOLS = """#!/bin/bash
#SBATCH -c 8
#SBATCH --array=1-21
BAM_LIST="/path/to/list.txt"
CURRENT_BAM=$(sed -n "${SLURM_ARRAY_TASK_ID}p" "${BAM_LIST}")
OUTPUT_BAM=${CURRENT_BAM/.bam/.processed.bam}
samtools view -hbu -q 10 -F 4 "${CURRENT_BAM}" \\
    samtools sort -o "${OUTPUT_BAM}" -
samtools index "${OUTPUT_BAM}"
"""

#: audit13/a4 repro/r8
SAMTOOLS_R8 = """#!/bin/bash
#SBATCH --array=1-10
BAM=$(sed -n "${SLURM_ARRAY_TASK_ID}p" bams.txt)
samtools view -hbu -q 10 "$BAM" \\
    samtools sort -o "${BAM%.bam}.sorted.bam" -
"""


def test_the_audited_samtools_pipeline_is_reported_at_the_joined_line():
    ((line, message),) = found(SAMTOOLS, "HPC532")
    assert line == 8 and "line 7 ends with a backslash" in message and "with |" in message
    assert [h[0] for h in found(SAMTOOLS_R8, "HPC532")] == [5]


@pytest.mark.parametrize("text", [
    "srun --ntasks=4 \\\n  python train.py\n",
    "apptainer exec --nv img.sif \\\n  torchrun --nproc-per-node=4 train.py\n",
    "mpirun -np 4 \\\n  ./app\n",
    "srun --ntasks=1 \\\n  srun_helper.sh\n",                       # a name that only begins like the command's
    'samtools view -b "$BAM" |\n  samtools sort -o out.bam -\n',    # the pipe is there
    'samtools view -b "$BAM" \\\n  "samtools" sort\n',              # a quoted word is meant as data
    "pip install --upgrade \\\n  pip setuptools wheel\n",           # a package manager installing itself
    "ssh -t gateway \\\n  ssh node hostname\n",                     # a hop through a gateway
    "python -m pip install \\\n  python-dateutil\n",
])
def test_commands_continued_into_another_program_or_an_argument(text):
    assert not found("#!/bin/bash\n#SBATCH --time=1:00:00\n" + text, "HPC532")


def test_the_same_program_joined_inside_a_loop_is_reported():
    text = ("#!/bin/bash\nfor b in *.bam; do\n  bwa mem ref.fa \"$b\" \\\n"
            "    bwa index ref.fa\ndone\n")
    assert [h[0] for h in found(text, "HPC532")] == [4]


# --- HPC135: Open MPI 5 under the site's MpiDefault ---------------------------------------------------------------

LOCAL = load_profile("local")
TWO_NODES = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\n"


def with_default(value: str):
    return LOCAL.replace(mpi_default=value)


def test_the_practice_cluster_profile_says_its_mpi_default():
    assert LOCAL.mpi_default == "none"   # scontrol show config on the practice cluster: MpiDefault = none
    assert load_profile("generic").mpi_default == ""


@pytest.mark.parametrize("default", ["none", "pmi2", "cray_shasta"])
def test_open_mpi_5_without_mpi_under_a_default_that_is_not_pmix(default):
    text = TWO_NODES + "module load openmpi/5.0.3\nsrun ./solver\n"
    ((line, message),) = found(text, "HPC135", with_default(default))
    assert line == 5 and f"MpiDefault={default}" in message and "module openmpi/5.0.3" in message
    assert "--mpi=pmix" in message


@pytest.mark.parametrize("profile, text", [
    (None, "module load openmpi/5.0.3\nsrun ./solver\n"),                      # no profile: the default is unknown
    ("", "module load openmpi/5.0.3\nsrun ./solver\n"),                        # a profile that does not say
    ("pmix", "module load openmpi/5.0.3\nsrun ./solver\n"),
    ("pmix_v4", "module load openmpi/5.0.3\nsrun ./solver\n"),
    ("none", "module load openmpi/5.0.3\nsrun --mpi=pmix ./solver\n"),
    ("none", "module load openmpi/5.0.3\nexport SLURM_MPI_TYPE=pmix\nsrun ./solver\n"),
    ("none", "module load openmpi/4.1.5\nsrun ./solver\n"),                    # Open MPI 4 may have PMI-2 support
    ("none", "module load mpich/4.1\nsrun ./solver\n"),
    ("none", "module load openmpi/5.0.3\nsrun --ntasks=1 ./solver\n"),         # one task is a singleton anyway
    ("none", "module load openmpi/5.0.3\nsrun --ntasks-per-node=1 mpirun -np 4 ./solver\n"),  # mpirun's ranks
])
def test_steps_the_site_default_does_not_break(profile, text):
    prof = None if profile is None else with_default(profile)
    assert not found(TWO_NODES + text, "HPC135", prof)


def test_a_step_that_names_pmi2_itself_is_hpc127s_only():
    text = TWO_NODES + "module load openmpi/5.0.3\nsrun --mpi=pmi2 ./solver\n"
    assert found(text, "HPC127", with_default("none")) and not found(text, "HPC135", with_default("none"))


def test_an_mpi_default_that_is_no_srun_plugin_is_refused(tmp_path):
    text = (files("hpcwidgets.profiles") / "generic.toml").read_text()
    site = tmp_path / "site.toml"
    site.write_text(text.replace('name = "generic"', 'name = "site"').replace('mpi_default = ""', 'mpi_default = "pmi3"'))
    with pytest.raises(ProfileError, match="not an MPI plugin of srun"):
        load_profile(site)


# --- HPC327: sbatch options written after the job script --------------------------------------------------------

@pytest.mark.parametrize("line, said", [
    ("sbatch stage2.sh --dependency=afterok:$SLURM_JOB_ID", "sbatch --dependency=afterok:$SLURM_JOB_ID stage2.sh"),
    ("NEXT=$(sbatch --parsable next.sh --array=1-4)", "sbatch --array=1-4 next.sh"),
])
def test_an_sbatch_option_after_the_script_is_the_scripts_argument(line: str, said: str) -> None:
    [found] = [f for f in lint(f"#!/bin/bash\n#SBATCH --time=10\n{line}\n") if f.code == "HPC327"]
    assert found.message.endswith(said) and "hands it to the script as an argument" in found.message


@pytest.mark.parametrize("line", [
    "sbatch --dependency=afterok:$SLURM_JOB_ID stage2.sh",
    "sbatch run.sh --epochs 3 --lr 0.1",          # the script's own options
    'sbatch --wrap "python x.py --time 3"',
])
def test_options_before_the_script_or_the_scripts_own_are_left_alone(line: str) -> None:
    assert [f for f in lint(f"#!/bin/bash\n#SBATCH --time=10\n{line}\n") if f.code == "HPC327"] == []


# --- HPC135 leaves system tools alone ---------------------------------------------------------------------------

@pytest.mark.parametrize("step, reported", [("srun hostname", False), ("srun mkdir -p /tmp/run", False),
                                            ("srun ./solver", True), ("srun apptainer exec img.sif ./solver", True)])
def test_hpc135_is_about_mpi_programs_not_system_tools(step: str, reported: bool) -> None:
    text = f"#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\nmodule load openmpi/5.0.3\n{step}\n"
    assert any(f.code == "HPC135" for f in lint(text, "local")) is reported
