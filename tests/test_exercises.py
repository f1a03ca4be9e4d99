"""Semantic answer checks and solution → exercise generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcwidgets.errors import HpcWidgetsError
from hpcwidgets.exercises import (AnswerError, Matcher, check_bind, check_command, check_model, check_script,
                                  check_tunnel, contains, one_of, pinned)
from hpcwidgets.exercises.build import (BEGIN, END, NotebookFormatError, build, dumps, exercise_from_solution,
                                        strip_solutions)
from hpcwidgets.parse.buildfiles import parse_deffile
from hpcwidgets.spec import ApptainerPull, ApptainerRun, Bind, DefFile, EnvVar, Srun
from hpcwidgets.spec.workflow import Workflow

ROOT = Path(__file__).resolve().parents[1]

RUN = ApptainerRun(action="exec", nv=True, binds=(Bind("$SCRATCH/data", "/data", "ro"), Bind("$SCRATCH/out", "/output")),
                   image="$SCRATCH/images/pt.sif", command=("python", "train.py"))


# ------------------------------------------------------------------------------------------------
# check_command: equivalent spellings pass
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", [
    "apptainer exec --nv --bind $SCRATCH/data:/data:ro --bind $SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
    # short flag, other order, braces, trailing slashes, comma-joined binds
    "apptainer exec -B $SCRATCH/out/:/output --nv -B ${SCRATCH}/data:/data:ro ${SCRATCH}/images/pt.sif python train.py",
    "apptainer exec -B ${SCRATCH}/data:/data:ro,$SCRATCH/out:/output:rw --nv $SCRATCH/images/pt.sif python train.py",
    # --mount syntax, continuation lines, a comment and a copied prompt
    "# my answer\n$ apptainer exec --nv \\\n  --mount type=bind,src=$SCRATCH/data,dst=/data,ro \\\n"
    "  --bind=$SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
    # singularity is the same program
    "singularity exec --nv -B $SCRATCH/data:/data:ro -B $SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
])
def test_check_command_accepts_equivalent_answers(answer, capsys):
    model = check_command(answer, RUN, task="train")
    assert model.nv and len(model.binds) == 2
    assert capsys.readouterr().out.startswith("✓ train")


def test_check_command_accepts_a_model():
    check_command(RUN.replace(binds=tuple(reversed(RUN.binds))), RUN)


@pytest.mark.parametrize("answer, feedback", [
    ("apptainer exec --nv -B $SCRATCH/data:/data -B $SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
     "your bind of $SCRATCH/data is read-write; the task asks for read-only data: add `:ro`"),
    ("apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/out:/output $SCRATCH/images/pt.sif --nv python train.py",
     "--nv comes after the image, so apptainer never sees it"),
    ("apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
     "add --nv"),
    ("apptainer exec --nv -B $SCRATCH/data:/data:ro $SCRATCH/images/pt.sif python train.py",
     "$SCRATCH/out is not bound: add --bind $SCRATCH/out:/output"),
    ("apptainer exec --nv -B $SCRATCH/data:/data:ro -B $SCRATCH/out:/output -B $HOME:/home2 $SCRATCH/images/pt.sif python train.py",
     "the bind of $HOME is not part of the task"),
    ("apptainer exec --nv -B /data:/data:ro -B $SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
     "/data inside the container shows /data; the task asks for $SCRATCH/data there"),
    ("apptainer exec --nv -B $SCRATCH/data:/input:ro -B $SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
     "$SCRATCH/data appears at /input inside the container; the task wants it at /data"),
    ("apptainer run --nv -B $SCRATCH/data:/data:ro -B $SCRATCH/out:/output $SCRATCH/images/pt.sif python train.py",
     "use `apptainer exec`, not `apptainer run`"),
    ("apptainer exec --nv -B $SCRATCH/data:/data:ro -B $SCRATCH/out:/output $SCRATCH/images/other.sif python train.py",
     "image is '$SCRATCH/images/other.sif'; the task asks for '$SCRATCH/images/pt.sif'"),
    ("srun apptainer exec x.sif python", "this is a `srun` command; the task asks for `apptainer exec`"),
    ("", "the answer is empty"),
    ("apptainer exec 'unclosed", "cannot be read"),
    ("ls\npwd", "the answer has 2 commands"),
])
def test_check_command_rejects_with_actionable_feedback(answer, feedback):
    with pytest.raises(AnswerError) as info:
        check_command(answer, RUN, task="train")
    assert feedback in str(info.value)
    assert str(info.value).startswith("Not yet: train")


def test_answer_error_is_package_error_and_assertion():
    with pytest.raises(AssertionError):
        check_command("apptainer exec img.sif python", RUN)
    with pytest.raises(HpcWidgetsError) as info:
        check_command("apptainer exec img.sif python", RUN)
    assert info.value.problems and info.value.task == ""


def test_flag_after_image_is_reported_once_with_linter_deduplicated():
    with pytest.raises(AnswerError) as info:
        check_command("apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/out:/output $SCRATCH/images/pt.sif "
                      "--nv python train.py", RUN)
    text = str(info.value)
    assert text.count("--nv") == 1, text
    assert "command:" not in text   # the misplaced flag is not reported again as a wrong program


def test_alternatives_pick_the_closest_feedback():
    base = ApptainerRun(image="img.sif", command=("python", "t.py"))
    options = [base.replace(cleanenv=True, no_home=True), base.replace(containall=True)]
    check_command("apptainer exec --containall img.sif python t.py", options)
    check_command("apptainer exec -e --no-home img.sif python t.py", options)
    with pytest.raises(AnswerError) as info:
        check_command("apptainer exec --cleanenv img.sif python t.py", options)
    assert "add --no-home" in str(info.value)


def test_pull_with_exported_cache_variable():
    want = ApptainerPull(dir="$SCRATCH/images", dest="pt.sif", source="docker://pytorch/pytorch:2.3.1",
                         cachedir="$SCRATCH/.apptainer/cache")
    check_command("export APPTAINER_CACHEDIR=${SCRATCH}/.apptainer/cache/\n"
                  "apptainer pull --dir $SCRATCH/images/ pt.sif docker://pytorch/pytorch:2.3.1", want)
    with pytest.raises(AnswerError) as info:
        check_command("apptainer pull --dir $SCRATCH/images pt.sif docker://pytorch/pytorch:2.3.1", want)
    assert "set APPTAINER_CACHEDIR to $SCRATCH/.apptainer/cache" in str(info.value)


MPI = Srun(mpi="pmix", ntasks_per_node=4, command=("apptainer", "exec", "$IMG", "/opt/hello"))


def test_nested_command_compared_as_models():
    check_command("srun --ntasks-per-node 4 --mpi=pmix apptainer exec ${IMG} /opt/hello", MPI)
    with pytest.raises(AnswerError) as info:
        check_command("srun --ntasks-per-node=4 --mpi=pmix apptainer exec --nv $IMG /opt/hello", MPI)
    assert "apptainer exec: remove --nv" in str(info.value)


def test_mpirun_inside_container_uses_the_linter():
    with pytest.raises(AnswerError) as info:
        check_command("srun --ntasks-per-node=4 apptainer exec $IMG mpirun /opt/hello", MPI)
    text = str(info.value)
    assert "add --mpi=pmix" in text
    assert "HPC214" in text and "launch the ranks from the host" in text


# ------------------------------------------------------------------------------------------------
# check_bind
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", ["$SCRATCH/data:/data:ro", "--bind ${SCRATCH}/data/:/data:ro",
                                    "-B $SCRATCH/data:/data/:ro", Bind("$SCRATCH/data", "/data", "ro")])
def test_check_bind_accepts(answer):
    assert check_bind(answer, "$SCRATCH/data:/data:ro").mode == "ro"


@pytest.mark.parametrize("answer, feedback", [
    ("$SCRATCH/data:/data", "add `:ro`"),
    ("$SCRATCH/data:/input:ro", "the task wants it at /data"),
    ("/tmp:/data:ro", "the task asks for $SCRATCH/data there"),
    ("-B a:/x -B b:/y", "is not one bind"),
])
def test_check_bind_rejects(answer, feedback):
    with pytest.raises(AnswerError) as info:
        check_bind(answer, Bind("$SCRATCH/data", "/data", "ro"))
    assert feedback in str(info.value)


def test_check_bind_writable_output():
    with pytest.raises(AnswerError) as info:
        check_bind("$SCRATCH/out:/output:ro", "$SCRATCH/out:/output")
    assert "drop `:ro`" in str(info.value)


# ------------------------------------------------------------------------------------------------
# check_script
# ------------------------------------------------------------------------------------------------
SBATCH = """#!/bin/bash
#SBATCH --partition=gpu
#SBATCH --gres=gpu:{gres}
#SBATCH --cpus-per-task=4
#SBATCH --mem={mem}
#SBATCH --time={time}
module load apptainer
apptainer exec {nv} $SCRATCH/images/pt.sif python train.py
"""
WANT = {"partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 4, "mem": "16G", "time": "01:30:00",
        "container.nv": True, "program": ("python", "train.py")}


@pytest.mark.parametrize("gres, mem, time", [("1", "16G", "01:30:00"), ("a100:1", "16384M", "90"),
                                             ("1", "16384", "0-01:30")])
def test_check_script_accepts_equivalent_units(gres, mem, time):
    wf = check_script(SBATCH.format(gres=gres, mem=mem, time=time, nv="--nv"), WANT, profile="generic")
    assert wf.job.partition == "gpu"


@pytest.mark.parametrize("changes, feedback", [
    ({"gres": "2"}, "the job gets 2 GPU(s) per node; the task asks for 1"),
    ({"mem": "8G"}, "#SBATCH --mem is 8G; the task asks for 16G"),
    ({"time": "02:00:00"}, "#SBATCH --time is 02:00:00; the task asks for 01:30:00"),
    ({"nv": ""}, "HPC201"),   # GPUs requested, container without --nv: the linter explains it
])
def test_check_script_rejects_with_feedback(changes, feedback):
    values = {"gres": "1", "mem": "16G", "time": "01:30:00", "nv": "--nv", **changes}
    with pytest.raises(AnswerError) as info:
        check_script(SBATCH.format(**values), WANT, profile="generic")
    assert feedback in str(info.value)


def test_check_script_uses_profile_limits():
    with pytest.raises(AnswerError) as info:
        check_script(SBATCH.format(gres="1", mem="16G", time="01:30:00", nv="--nv").replace("gpu\n", "gpu-multi\n", 1),
                     {}, profile="generic")
    assert "HPC401" in str(info.value)


DECK = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --partition=gpu
srun apptainer run --nv $IMG \\
  torchrun --nnodes=$SLURM_NNODES --nproc_per_node=$SLURM_NTASKS_PER_NODE --rdzv_id=$SLURM_JOB_ID \\
  --rdzv_backend=c10d --rdzv_endpoint=$SLURM_STEP_NODELIST:29500 train.py
"""


def test_check_script_explains_the_deck_bug_with_the_linter():
    with pytest.raises(AnswerError) as info:
        check_script(DECK, {"srun.ntasks_per_node": 1, "launcher.nproc_per_node": "4"}, profile="generic")
    text = str(info.value)
    assert "srun starts 4 torchrun launchers on each node" in text
    assert "--ntasks-per-node=1 so torchrun starts one worker per GPU" in text
    assert "node list" in text


def test_check_script_accepts_a_workflow_model():
    wf = Workflow.multi_node("ddp.py", nodes=2, gpus_per_node=4, image="$SCRATCH/i.sif", partition="gpu")
    check_script(wf, {"nodes": 2, "srun.ntasks_per_node": 1, "launcher.nproc_per_node": one_of("4", "$SLURM_GPUS_ON_NODE"),
                      "runtime": "apptainer", "container.nv": True}, profile="generic")


def test_check_script_missing_layer():
    text = "#!/bin/bash\n#SBATCH --partition=cpu\npython train.py\n"
    with pytest.raises(AnswerError) as info:
        check_script(text, {"srun.ntasks_per_node": 1}, profile="generic")
    assert "there is no srun layer" in str(info.value)


def test_check_script_unknown_property_is_a_programming_error():
    with pytest.raises(KeyError, match="no field 'bogus'"):
        check_script("#!/bin/bash\npython t.py\n", {"launcher.bogus": 1, "job.bogus": 2})


# ------------------------------------------------------------------------------------------------
# check_model, matchers, check_tunnel
# ------------------------------------------------------------------------------------------------
DEF_WANT = {"from_": pinned(), "post": contains("pip install", "scikit-learn"),
            "environment": (EnvVar("PYTHONNOUSERSITE", "1"),)}


def test_check_model_reads_text_and_models():
    text = ("Bootstrap: docker\nFrom: pytorch/pytorch:2.3.1\n\n%post\n    pip install scikit-learn==1.5.0\n\n"
            "%environment\n    export PYTHONNOUSERSITE=1\n")
    check_model(text, DEF_WANT, cls=DefFile, parse=parse_deffile)
    check_model(parse_deffile(text), DEF_WANT, cls=DefFile)


@pytest.mark.parametrize("from_, feedback", [("pytorch/pytorch:latest", "pinned version tag"),
                                             ("pytorch/pytorch", "pinned version tag")])
def test_check_model_rejects_unpinned(from_, feedback):
    model = DefFile(from_=from_, post=("pip install scikit-learn",), environment=(EnvVar("PYTHONNOUSERSITE", "1"),))
    with pytest.raises(AnswerError) as info:
        check_model(model, DEF_WANT)
    assert feedback in str(info.value)


def test_check_model_reports_missing_environment():
    with pytest.raises(AnswerError) as info:
        check_model(DefFile(from_="a/b:1", post=("pip install scikit-learn",)), DEF_WANT)
    assert "PYTHONNOUSERSITE is not set" in str(info.value)


def test_matcher_sentence():
    m = Matcher(lambda v: v > 2, "more than 2")
    assert m(3) and not m(1) and not m("x")


@pytest.mark.parametrize("answer", ["ssh -N -L 8888:n1:23456 $USER@login.example.edu",
                                    "ssh -L8888:n1:23456 -N alice@login.example.edu"])
def test_check_tunnel_accepts(answer):
    check_tunnel(answer, node="n1", port=23456, login_host="login.example.edu", local_port=8888)


@pytest.mark.parametrize("answer, feedback", [
    ("ssh -N -L 8888:localhost:23456 login.example.edu", "forwards to the login node itself"),
    ("ssh -N -L 8888:n1:8888 login.example.edu", "listens on port 23456"),
    ("ssh -N -L 8888:n1:23456 n1", "connect to the login host"),
    ("ssh -L 8888:n1:23456 login.example.edu", "add -N"),
    ("ssh login.example.edu", "there is no -L"),
])
def test_check_tunnel_rejects(answer, feedback):
    with pytest.raises(AnswerError) as info:
        check_tunnel(answer, node="n1", port=23456, login_host="login.example.edu")
    assert feedback in str(info.value)


# ------------------------------------------------------------------------------------------------
# build: solution → exercise
# ------------------------------------------------------------------------------------------------
def _nb(*sources: str, tags: dict[int, list[str]] | None = None) -> dict:
    cells = []
    for i, src in enumerate(sources):
        meta = {"tags": tags[i]} if tags and i in tags else {}
        cells.append({"cell_type": "code", "id": f"c{i}", "metadata": meta, "source": src,
                      "execution_count": 3, "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}]})
    return {"cells": cells, "metadata": {"hpcwidgets": {"matrix": [{"profile": "generic"}]}},
            "nbformat": 4, "nbformat_minor": 5}


def test_strip_solutions_keeps_hints_and_indentation():
    src = f"x = 1\nif True:\n    # HINT: use --nv\n    # HINT: before the image\n    {BEGIN}\n    answer = 'secret'\n    {END}\nprint(answer)"
    out, n = strip_solutions(src)
    assert n == 1
    assert "secret" not in out
    assert '    raise NotImplementedError("Exercise: use --nv before the image")' in out
    assert "    # HINT: use --nv" in out and out.endswith("print(answer)")


@pytest.mark.parametrize("src, message", [(f"{BEGIN}\nx = 1", "never closed"), (f"x\n{END}", f"no {BEGIN}"),
                                          (f"{BEGIN}\n{BEGIN}\n{END}", "cannot nest")])
def test_strip_solutions_rejects_bad_markers(src, message):
    with pytest.raises(NotebookFormatError, match=message):
        strip_solutions(src, "nb")


def test_exercise_from_solution_clears_outputs_and_keeps_metadata():
    nb = _nb("profile = 'generic'", f"{BEGIN}\nanswer = 1\n{END}", tags={0: ["parameters"]})
    ex = exercise_from_solution(nb, "t.ipynb")
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in ex["cells"])
    assert ex["cells"][0]["metadata"]["tags"] == ["parameters"]
    assert ex["metadata"]["hpcwidgets"]["matrix"] == [{"profile": "generic"}]
    assert ex["metadata"]["kernelspec"]["name"] == "python3"
    assert "NotImplementedError" in "".join(ex["cells"][1]["source"])
    assert nb["cells"][1]["outputs"], "the input notebook is not modified"


@pytest.mark.parametrize("nb, message", [
    (_nb(f"{BEGIN}\n{END}"), "exactly one cell tagged 'parameters'"),
    (_nb("p = 1", "x = 2", tags={0: ["parameters"]}), "no solution region"),
])
def test_exercise_from_solution_requires_parameters_and_a_task(nb, message):
    with pytest.raises(NotebookFormatError, match=message):
        exercise_from_solution(nb, "t.ipynb")


def test_build_writes_deterministic_json_and_check_detects_staleness(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    (sol / "ex01-a.ipynb").write_text(json.dumps(_nb("p = 1", f"{BEGIN}\nanswer = 1\n{END}", tags={0: ["parameters"]})))
    first = build(sol, ex)
    assert [p.name for p in first.written] == ["ex01-a.ipynb"]
    text = (ex / "ex01-a.ipynb").read_text()
    assert text == dumps(json.loads(text)) and text.endswith("}\n")
    assert build(sol, ex, check=True).stale == ()
    again = build(sol, ex)
    assert again.written == () and len(again.unchanged) == 1
    # edit the solution: the exercise is stale until rebuilt
    nb = json.loads((sol / "ex01-a.ipynb").read_text())
    nb["cells"][1]["source"] = f"# HINT: new hint\n{BEGIN}\nanswer = 2\n{END}"
    (sol / "ex01-a.ipynb").write_text(json.dumps(nb))
    assert [p.name for p in build(sol, ex, check=True).stale] == ["ex01-a.ipynb"]
    assert "new hint" not in (ex / "ex01-a.ipynb").read_text(), "--check writes nothing"
    (ex / "ex01-a.ipynb").unlink()
    assert [p.name for p in build(sol, ex, check=True).stale] == ["ex01-a.ipynb"]


def test_shipped_exercises_are_up_to_date_and_unsolved():
    result = build(ROOT / "solutions", ROOT / "exercises", check=True)
    assert result.stale == (), f"run `hpcwidgets workshop build`: stale {[str(p) for p in result.stale]}"
    names = sorted(p.name for p in (ROOT / "solutions").glob("ex*.ipynb"))
    assert len(names) >= 12 and names[0].startswith("ex01-") and names[11].startswith("ex12-")
    for name in names:
        text = (ROOT / "exercises" / name).read_text()
        assert "NotImplementedError" in text and BEGIN not in text and END not in text, name
        nb = json.loads((ROOT / "solutions" / name).read_text())
        matrix = nb["metadata"]["hpcwidgets"]["matrix"]
        assert {"profile": "generic"} in matrix and {"profile": "local"} in matrix, name
        params = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(params) == 1 and 'profile: str = "generic"' in "".join(params[0]["source"]), name
        assert nb["cells"][0]["cell_type"] == "markdown" and "**Time:**" in "".join(nb["cells"][0]["source"]), name
