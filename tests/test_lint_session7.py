"""Rules added or corrected after an audit of less common script families (Singularity-era, pyxis, Lightning,
MPI in containers, conda in images): each case is a minimal form of a script the audit found."""

from __future__ import annotations

import pytest

from hpcwidgets.fixes import fix_script
from hpcwidgets.lint import lint

HEAD = "#!/bin/bash\n#SBATCH --time=01:00:00\n"


def codes(body: str, head: str = HEAD) -> set[str]:
    return {f.code for f in lint(head + body) if f.severity != "info"}


@pytest.mark.parametrize("body, reported", [
    ("apptainer exec --nv img.sif conda run -n myenv python train.py\n", False),    # conda run runs the work
    ("singularity exec img.sif conda env create -f environment.yml -n x\npython t.py\n", False),  # writes files
    ("apptainer exec img.sif spack install zlib\n", False),
    ("apptainer exec img.sif conda activate x\npython t.py\n", True),
    ("apptainer exec img.sif spack env activate e\npython t.py\n", True),
    ("apptainer exec img.sif bash -c 'conda activate x && module load y'\npython t.py\n", True),
    # an interactive shell reads nothing in a batch job
    ("apptainer exec --nv img.sif bash\nconda activate x\npython t.py\n", True),
    ("apptainer exec --nv img.sif $SHELL\npython t.py\n", True),
    ("apptainer shell img.sif\npython t.py\n", True),
    ("srun apptainer exec img.sif bash -l\n", True),
    ("apptainer exec img.sif bash < run.sh\n", False),
    ("apptainer exec img.sif bash <<EOF\npython t.py\nEOF\n", False),
    ("cat run.sh | apptainer exec img.sif bash\n", False),
    ("apptainer exec img.sif bash run.sh\n", False),
])
def test_hpc217_set_up_only_and_interactive_shells(body, reported):
    assert ("HPC217" in codes(body)) is reported


def test_an_interactive_shell_typed_at_a_prompt_is_fine():
    """A tutorial's commands (no #SBATCH line): apptainer shell is how one explores an image."""
    assert "HPC217" not in codes('apptainer shell --nv "$SIF"\napptainer run "$SIF"\n', "")


@pytest.mark.parametrize("body, reported", [
    ('SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"\npython /w/t.py\n', False),      # copied in, never used
    ('SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"\nsource "$SCRIPT_DIR/env.sh"\n', True),
    ('D=$(dirname "$0")\necho "${D}/x"\n', True),
    ('export SCRIPT_DIR="$(dirname "$0")"\npython t.py\n', True),                 # a child may read it
])
def test_hpc503_only_when_the_script_location_is_used(body, reported):
    assert ("HPC503" in codes(body)) is reported


def test_hpc515_retypes_every_typographic_dash_of_an_option_and_reports_it_once():
    script = "#!/bin/bash\n#SBATCH \u2212\u2212cpus\u2212per-task=8\n#SBATCH --mem\u2010per-cpu=2G\n" \
             "#SBATCH --job-name=a\u2013b\npython x.py \u2013-epochs 3\n"
    found = lint(script)
    assert sorted((f.line, f.code) for f in found) == [(2, "HPC515"), (3, "HPC515"), (5, "HPC515")], \
        [f.format() for f in found]
    text, fixed = fix_script(script)
    assert "#SBATCH --cpus-per-task=8\n#SBATCH --mem-per-cpu=2G\n#SBATCH --job-name=a\u2013b\n" in text
    assert "python x.py --epochs 3" in text and lint(text) == []


@pytest.mark.parametrize("line, reported", [
    ("#SBTACH --time=02:00:00", True), ("#sbatch --mem=4G", True), ("#SBACTH -N 2", True), ("#SBATC --mem=1G", True),
    ("# SBATCH --mem=4G", False), ("##SBATCH --mem=4G", False),      # switched off on purpose
    ("#PBS -l walltime=1:00:00", False), ("#BSUB -n 4", False), ("#SBATCH --mem=4G", False),
])
def test_hpc321_misspelled_sentinel(line, reported):
    script = f"#!/bin/bash\n#SBATCH --gres=gpu:1\n{line}\npython train.py\n"
    found = [f for f in lint(script) if f.code == "HPC321"]
    assert bool(found) is reported
    if reported:
        text, _ = fix_script(script)
        assert text.splitlines()[2].startswith("#SBATCH -") and not [f for f in lint(text) if f.code == "HPC321"]


def test_hpc321_only_in_the_header():
    assert "HPC321" not in codes("python train.py\n#SBTACH --time=1:00:00\n")


@pytest.mark.parametrize("script, expected", [
    # mpirun in the container's bash -c script is the container's too: HPC214, as below
    ("#SBATCH --ntasks=2\nsrun singularity exec matr.sif bash -c \"mpirun -n 2 ./main\"\n", {"HPC214"}),
    ("#SBATCH --ntasks=4\nsrun mpirun -n 4 singularity exec img.sif ./main\n", {"HPC119"}),
    # mpirun as the container's program: HPC214 (launch from the host) says it, with the same fix
    ("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=4\nsrun apptainer exec img.sif mpirun -n 8 ./x\n", {"HPC214"}),
    ("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\nsrun apptainer exec img.sif mpirun --version\n", set()),
    ("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=32\nsrun -N1 -n1 apptainer exec img.sif mpirun -n 64 ./x\n",
     {"HPC214"}),
    ("#SBATCH --ntasks=4\nsrun --mpi=pmix apptainer exec img.sif ./x\n", set()),
])
def test_hpc119_one_mpi_launcher_per_srun_task(script, expected):
    assert codes(script, "#!/bin/bash\n") == expected


@pytest.mark.parametrize("script, reported", [
    ("#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=8\n#SBATCH --gres=gpu:4\nsrun python main.py\n", True),
    ("#SBATCH --ntasks-per-node=8\n#SBATCH --gres=gpu:4\nsrun apptainer exec --nv i.sif python main.py\n", True),
    ("#SBATCH --ntasks-per-node=8\n#SBATCH --gpus-per-task=1\nsrun python main.py\n", False),
    ("#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4\nsrun python main.py\n", False),
    ("#SBATCH --ntasks=8\n#SBATCH --gres=gpu:4\nsrun ./gmx mdrun\n", False),           # MPI codes choose freely
    ("#SBATCH --ntasks=8\n#SBATCH --gres=gpu:4\nsrun python main.py\n", False),        # Slurm may use 2 nodes
    ("#SBATCH --nodes=1-2\n#SBATCH --ntasks=8\n#SBATCH --gres=gpu:4\nsrun python main.py\n", False),
    ("#SBATCH --nodes=1\n#SBATCH --ntasks=8\n#SBATCH --gres=gpu:4\nsrun python main.py\n", True),
])
def test_hpc120_more_python_tasks_than_gpus(script, reported):
    assert ("HPC120" in codes(script, "#!/bin/bash\n")) is reported


def test_hpc202_an_explicit_zero_gpu_request_on_a_gpu_partition():
    script = "#SBATCH --partition=gpus\n#SBATCH --gres=gpu:0\napptainer exec --nv img.sif python t.py\n"
    assert "HPC202" in codes(script, "#!/bin/bash\n")
    assert "HPC202" not in codes(script.replace("#SBATCH --gres=gpu:0\n", ""), "#!/bin/bash\n")


@pytest.mark.parametrize("endpoint, reported", [("localhost:6000", True), ("127.0.0.1:6000", True),
                                                ("$head:6000", False)])
def test_hpc106_an_elastic_range_with_its_rendezvous_on_this_node(endpoint, reported):
    script = (f"#SBATCH --gres=gpu:4\ntorchrun --nnodes=1:2 --nproc_per_node=4 --rdzv_backend=c10d "
              f"--rdzv_endpoint={endpoint} train.py\n")
    assert ("HPC106" in codes(script, "#!/bin/bash\n")) is reported


@pytest.mark.parametrize("set_it", ['if [[ $(hostname -s) =~ ^g ]]; then nv="--nv"; fi', "NV=--nv"])
def test_the_gpu_flag_given_through_a_variable(set_it):
    """NYU Greene's overlay jobs: singularity exec $nv --overlay … (bash splits $nv into --nv, or drops it)."""
    var = "$nv" if "nv=" in set_it else "${NV}"
    script = f"#SBATCH --gres=gpu:1\n{set_it}\nsingularity exec {var} --overlay overlay.ext3:ro cuda.sif python t.py\n"
    assert not {"HPC201", "HPC203"} & codes(script, "#!/bin/bash\n")
    # without the variable the flag is missing, and said so
    assert "HPC201" in codes(script.replace(var + " ", ""), "#!/bin/bash\n")


def test_a_directive_typed_with_a_typographic_dash_is_named_so_when_read_back():
    """workflow --from used to say only "write the option as it follows #SBATCH" for '−−nodes=1'."""
    from hpcwidgets.spec import SlurmJob
    (problem,) = SlurmJob(extra_directives=("\u2212\u2212nodes=1",)).problems()
    assert "typographic dash" in problem.message and problem.message.endswith("--nodes=1")
    found = lint("#!/bin/bash\n#SBATCH \u2212\u2212nodes=1\npython t.py\n")
    assert [f.code for f in found] == ["HPC515"], [f.format() for f in found]


def test_an_empty_extra_directive_is_a_plain_problem():
    """Found by the read-back property test: the typographic-dash check indexed an empty word."""
    from hpcwidgets.spec import SlurmJob
    (problem,) = SlurmJob(extra_directives=("",)).problems()
    assert "write the option as it follows #SBATCH" in problem.message


@pytest.mark.parametrize("body, says, fixed", [
    ("#SBATCH --signal=USR1@120\ntrap 'echo hi' USR1\nsrun python t.py &\nwait\n", "trap of line 4 never runs",
     "#SBATCH --signal=B:USR1@120"),
    ("#SBATCH --signal=R:USR1@60\ntrap 'x' SIGUSR1\nsrun python t.py & wait\n", "--signal=RB:USR1@60",
     "#SBATCH --signal=RB:USR1@60"),
    ("#SBATCH --signal=10@60\ntrap 'x' USR1\nsrun python t.py & wait\n", "never runs", "#SBATCH --signal=B:10@60"),
    ("#SBATCH --signal=SIGINT@60\npython t.py\n", "nothing receives the warning", None),
])
def test_hpc517_a_signal_the_batch_shell_never_gets(body, says, fixed):
    script = HEAD + body
    (finding,) = [f for f in lint(script) if f.code == "HPC517"]
    assert says in finding.message and finding.line == 3
    text, _ = fix_script(script)
    assert text.splitlines()[2] == (fixed or body.splitlines()[0])


@pytest.mark.parametrize("body", [
    "#SBATCH --signal=USR1@60\nsrun python t.py\n",                  # the step gets it: the program's own handler
    "#SBATCH --signal=B:USR1@60\ntrap 'x' USR1\nsrun python t.py & wait\n",
    "#SBATCH --signal=B:USR1@60\npython t.py\n",
])
def test_hpc517_not_when_the_signal_reaches_its_receiver(body):
    assert "HPC517" not in codes(body)


def test_hpc502_not_without_tasks_and_hpc201_not_for_options_in_an_array():
    """A one-node job with no srun: the batch shell is the only task; ARGS=(--nv …) "${ARGS[@]}" holds the flag."""
    assert "HPC502" not in codes('#SBATCH --gres=gpu:1\nexport TAG="node${SLURM_NODEID}"\npython serve.py\n')
    assert "HPC502" in codes("#SBATCH --ntasks=4\nexport R=$SLURM_PROCID\nsrun python t.py\n")
    assert "HPC201" not in codes('#SBATCH --gres=gpu:1\nARGS=(--nv --bind /data)\n'
                                 'apptainer exec "${ARGS[@]}" vllm.sif vllm serve m\n')


def test_export_takes_its_value_after_a_space():
    """slurm_opt.c declares --export with a required argument: #SBATCH --export ALL is one option."""
    assert "HPC310" not in codes("#SBATCH --export ALL\npython t.py\n")
    assert "HPC516" in codes("#SBATCH --export NONE\nmodule load x\nsrun python t.py\n")


@pytest.mark.parametrize("body, reported", [
    ("ray start --head --port=6379\npython run.py\n", True),
    ('srun --nodes=1 --ntasks=1 -w "$head" ray start --head --block &\nsleep 10\npython run.py\n', False),
    ("ray start --head\nsrun --nodes=1 --ntasks=1 -w n2 ray start --address=$ip:6379 --block &\npython run.py\n",
     False),
])
def test_hpc110_ray_started_only_in_the_batch_shell(body, reported):
    script = "#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n" + body
    assert ("HPC110" in codes(script, "")) is reported
    assert "HPC110" not in codes(script.replace("--nodes=2", "--nodes=1"), "")
