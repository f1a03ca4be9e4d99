"""Alternative right answers and classic wrong answers for every exercise, judged by the checks the
exercise notebooks call (with the expected models the solutions build, for the ``generic`` profile).

Each case is ``(answer, None)`` for an answer an expert accepts, or ``(answer, feedback)`` for a wrong
one: the check must reject it with a message that contains ``feedback``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

import hpcwidgets as hw
from hpcwidgets.exercises import (AnswerError, check_bind, check_command, check_model, check_script, check_tunnel,
                                  contains, one_host, one_of, pinned)
from hpcwidgets.lint import lint
from hpcwidgets.parse.buildfiles import parse_deffile
from hpcwidgets.render import render
from hpcwidgets.spec.convert import to_charliecloud
from hpcwidgets.spec.workflow import with_gpus

PROF = hw.load_profile("generic")
IMG = "$SCRATCH/images/pytorch_24.05.sif"
QUOTES = "single quotes keep $ literal, so the shell does not expand the variable: use double quotes (or none)"
SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
_REGION = re.compile(r"^[ \t]*# BEGIN SOLUTION\n.*?^[ \t]*# END SOLUTION\n?", re.S | re.M)


def judge(check, answer, feedback, *args, **kwargs):
    if feedback is None:
        check(answer, *args, **kwargs)
        return
    with pytest.raises(AnswerError) as info:
        check(answer, *args, **kwargs)
    assert feedback in str(info.value), str(info.value)


def run_solution(name: str, answer: str | None = None, **params) -> tuple[dict, str, str]:
    """Run the code cells of ``solutions/NAME-*.ipynb`` in this process, the way papermill runs them
    (``params`` set after the parameters cell), with the first task's solution region replaced by
    ``answer`` if one is given (the exercise, answered). (namespace, printed text, markdown text)."""
    nb = json.loads(next(SOLUTIONS.glob(f"{name}-*.ipynb")).read_text())
    namespace, printed = {"__name__": "__main__"}, io.StringIO()
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        if answer is not None and _REGION.search(src):
            src, answer = _REGION.sub(lambda _m: answer + "\n", src, count=1), None
        if "parameters" in cell["metadata"].get("tags", []):
            src += "".join(f"\n{key} = {value!r}" for key, value in params.items())
        with contextlib.redirect_stdout(printed):
            exec(compile(src, name, "exec"), namespace)
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return namespace, printed.getvalue(), markdown


# ------------------------------------------------------------------------------------------------
# ex01 · pull with the cache on scratch
# ------------------------------------------------------------------------------------------------
SRC = "docker://pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"
CACHE = "$SCRATCH/.apptainer/cache"
EX01 = [hw.ApptainerPull(dir="$SCRATCH/images", dest="pytorch_2.3.1.sif", source=SRC, cachedir=CACHE),
        hw.ApptainerPull(dest="$SCRATCH/images/pytorch_2.3.1.sif", source=SRC, cachedir=CACHE)]


@pytest.mark.parametrize("answer, feedback", [
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull $SCRATCH/images/pytorch_2.3.1.sif {SRC}", None),
    (f"APPTAINER_CACHEDIR=${{SCRATCH}}/.apptainer/cache apptainer pull --dir=${{SCRATCH}}/images/ pytorch_2.3.1.sif {SRC}", None),
    (f"export APPTAINER_CACHEDIR={CACHE}\napptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    (f'APPTAINER_CACHEDIR="{CACHE}" apptainer pull "$SCRATCH/images/pytorch_2.3.1.sif" {SRC}', None),
    (f"SINGULARITY_CACHEDIR={CACHE} singularity pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    (f"# pull\nAPPTAINER_CACHEDIR={CACHE} \\\n  apptainer pull --dir $SCRATCH/images \\\n  pytorch_2.3.1.sif {SRC}", None),
    (f"export APPTAINER_CACHEDIR=${{SCRATCH}}/.apptainer/cache/\napptainer pull ${{SCRATCH}}/images//pytorch_2.3.1.sif {SRC}", None),
    # fixed: --force is harmless; `export …;` and a `mkdir -p` first are one command; docker.io/ is the default registry
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull -F --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --force $SCRATCH/images/pytorch_2.3.1.sif {SRC}", None),
    (f"mkdir -p {CACHE}; APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    (f"export APPTAINER_CACHEDIR={CACHE}; apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    (f"APPTAINER_CACHEDIR={CACHE}\nexport APPTAINER_CACHEDIR\napptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif "
     "docker://docker.io/pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", None),
    (f"IMAGES=$SCRATCH/images\nAPPTAINER_CACHEDIR={CACHE} apptainer pull --dir $IMAGES pytorch_2.3.1.sif {SRC}", None),
    # fixed: `env NAME=value cmd` is `NAME=value cmd` (was "'env' is not a command this reader knows")
    (f"env APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", None),
    # wrong
    (f"apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}", "set APPTAINER_CACHEDIR to $SCRATCH/.apptainer/cache"),
    (f"APPTAINER_CACHEDIR=~/.apptainer/cache apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}",
     "APPTAINER_CACHEDIR is ~/.apptainer/cache; the task asks for $SCRATCH/.apptainer/cache"),
    (f"APPTAINER_CACHEDIR=$HOME/.apptainer/cache apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}",
     "APPTAINER_CACHEDIR is $HOME/.apptainer/cache"),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif docker://pytorch/pytorch:latest",
     "source is 'docker://pytorch/pytorch:latest'"),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull pytorch_2.3.1.sif {SRC}", "add --dir $SCRATCH/images"),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch.sif {SRC}", "output file is 'pytorch.sif'"),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer build $SCRATCH/images/pytorch_2.3.1.sif {SRC}", "the task asks for `apptainer pull`"),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime",
     "the task asks for 'docker://"),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif "
     "docker://docker.io/library/pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", "source is"),  # library/ is for official images
    # fixed: a variable on its own line is not exported (it was accepted)
    (f"APPTAINER_CACHEDIR={CACHE}\napptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}",
     "sets a shell variable that apptainer never sees: write `export APPTAINER_CACHEDIR=…`"),
    # fixed: teach why (was "set APPTAINER_CACHEDIR" although it is set, or an escaped \$)
    (f"APPTAINER_CACHEDIR={CACHE} singularity pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}",
     "singularity reads SINGULARITY_CACHEDIR, not APPTAINER_CACHEDIR"),
    (f"APPTAINER_CACHEDIR='{CACHE}' apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}",
     "single quotes keep $ literal"),
    ("docker pull pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime", "use apptainer (it reads docker:// images)"),
    (f"APPTAINER_CACHEDIR={CACHE} apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}\nls", "2 commands"),
    (f"env APPTAINER_CACHEDIR=~/.cache apptainer pull --dir $SCRATCH/images pytorch_2.3.1.sif {SRC}",
     "APPTAINER_CACHEDIR is ~/.cache"),
])
def test_ex01_pull(answer, feedback):
    judge(check_command, answer, feedback, EX01, task="pull")


# ------------------------------------------------------------------------------------------------
# ex02 · bind mounts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer, feedback", [
    ("$SCRATCH/data:/data:ro", None),
    ("${SCRATCH}/data/:/data:ro", None),
    ("--bind $SCRATCH/data:/data:ro", None),
    ("--bind=$SCRATCH/data:/data:ro", None),
    ("-B=$SCRATCH/data:/data:ro", None),
    ('"$SCRATCH/data:/data:ro"', None),
    (" $SCRATCH/data:/data:ro\n", None),
    # fixed: the --mount spelling check_command accepts
    ("--mount type=bind,source=$SCRATCH/data,destination=/data,readonly", None),
    ("type=bind,src=$SCRATCH/data,dst=/data,ro", None),
    # wrong
    ("$SCRATCH/data:/data", "add `:ro`"),
    ("$SCRATCH/data:/data:rw", "add `:ro`"),
    ("$SCRATCH/data:ro", "the task wants it at /data"),
    ("~/data:/data:ro", "the task asks for $SCRATCH/data there"),
    ("$SCRATCH/work:/data:ro", "the task asks for $SCRATCH/data there"),
    ("/data:$SCRATCH/data:ro", "$SCRATCH/data is not bound"),
    ("-B a:/x -B b:/y", "is not one bind"),
    ("$SCRATCH/data:/data:ro,$SCRATCH/work:/output", "several binds"),
    # fixed: was "the task asks for … there" with a stray quote, or "your bind is read-write"
    ("'$SCRATCH/data':/data:ro", "single quotes keep $ literal"),
    ("$SCRATCH/data:/data:readonly", "`:readonly` is not a bind mode"),
    ("$SCRATCH/data:/data:r", "`:r` is not a bind mode"),
])
def test_ex02_one_bind(answer, feedback):
    judge(check_bind, answer, feedback, hw.Bind("$SCRATCH/data", "/data", "ro"))


EX02 = hw.ApptainerRun(action="exec", binds=(hw.Bind("$SCRATCH/data", "/data", "ro"), hw.Bind("$SCRATCH/work", "/output")),
                       image=IMG, command=("python", "/scripts/train.py", "--data", "/data", "--output", "/output"))
P2 = "python /scripts/train.py --data /data --output /output"


@pytest.mark.parametrize("answer, feedback", [
    (f"apptainer exec --bind $SCRATCH/data:/data:ro --bind $SCRATCH/work:/output {IMG} {P2}", None),
    (f"apptainer exec -B $SCRATCH/work:/output -B $SCRATCH/data:/data:ro {IMG} {P2}", None),
    (f"apptainer exec -B $SCRATCH/data:/data:ro,$SCRATCH/work:/output {IMG} {P2}", None),
    (f'singularity exec --bind="$SCRATCH/data:/data:ro" --bind="$SCRATCH/work:/output" "{IMG}" {P2}', None),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output:rw {IMG} {P2}", None),
    (f"apptainer exec --mount type=bind,src=$SCRATCH/data,dst=/data,ro -B $SCRATCH/work:/output {IMG} {P2}", None),
    # fixed: harmless isolation, python3, argparse options in another order or with =, a variable for the image
    (f"apptainer exec --cleanenv -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} {P2}", None),
    (f"apptainer exec --no-home -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} {P2}", None),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} python3 /scripts/train.py --data /data --output /output", None),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} python /scripts/train.py --output /output --data /data", None),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} python /scripts/train.py --data=/data --output=/output", None),
    (f'IMG={IMG}\napptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output "$IMG" {P2}', None),
    # wrong
    (f"apptainer exec -B $SCRATCH/data:/data -B $SCRATCH/work:/output {IMG} {P2}", "add `:ro`"),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output:ro {IMG} {P2}", "drop `:ro`"),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output -B $HOME {IMG} {P2}", "the bind of $HOME is not part of the task"),
    (f"apptainer run -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} {P2}", "use `apptainer exec`"),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} python train.py --data /data --output /output",
     "the task asks for 'python /scripts/train.py"),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} python /scripts/train.py --data /output --output /data",
     "you run"),
    (f"apptainer exec -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {IMG} python /scripts/train.py --data /data", "you run"),
    # fixed: binds after the image are named as such (was: not bound + a wrong program)
    (f"apptainer exec {IMG} -B $SCRATCH/data:/data:ro -B $SCRATCH/work:/output {P2}", "the --bind options come after the image"),
])
def test_ex02_command(answer, feedback):
    judge(check_command, answer, feedback, EX02)
    if feedback == "the --bind options come after the image":
        with pytest.raises(AnswerError) as info:
            check_command(answer, EX02)
        assert "you run" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# ex03 · the GPU flag
# ------------------------------------------------------------------------------------------------
EX03 = with_gpus(hw.ApptainerRun(action="exec", image=IMG,
                                 command=("python", "-c", "import torch; print(torch.cuda.is_available())")),
                 gpus=1, vendor="nvidia")
PROBE = "python -c 'import torch; print(torch.cuda.is_available())'"


@pytest.mark.parametrize("answer, feedback", [
    (f"apptainer exec --nv {IMG} {PROBE}", None),
    (f"singularity exec --nv {IMG} {PROBE}", None),
    (f'apptainer exec --nv {IMG} python -c "import torch; print(torch.cuda.is_available())"', None),
    (f'apptainer exec --nv "${{SCRATCH}}/images/pytorch_24.05.sif" {PROBE}', None),
    (f"apptainer exec --nv {IMG} \\\n    {PROBE}", None),
    # fixed: harmless --cleanenv, python3, the same Python code spaced differently
    (f"apptainer exec --cleanenv --nv {IMG} {PROBE}", None),
    (f"apptainer exec --nv {IMG} python3 -c 'import torch; print(torch.cuda.is_available())'", None),
    (f"apptainer exec --nv {IMG} python -c 'import torch;print(torch.cuda.is_available())'", None),
    # fixed: Apptainer reads --nv from APPTAINER_NV too (was "add --nv")
    (f"APPTAINER_NV=1 apptainer exec {IMG} {PROBE}", None),
    (f"export APPTAINER_NV=true\napptainer exec {IMG} {PROBE}", None),
    (f"SINGULARITY_NV=1 singularity exec {IMG} {PROBE}", None),
    # wrong
    (f"APPTAINER_NV=0 apptainer exec {IMG} {PROBE}", "add --nv"),
    (f"APPTAINER_ROCM=1 apptainer exec --nv {IMG} {PROBE}", "remove --rocm"),
    (f"apptainer exec {IMG} --nv {PROBE}", "--nv comes after the image"),
    (f"apptainer exec {IMG} {PROBE}", "add --nv"),
    (f"apptainer exec --rocm {IMG} {PROBE}", "add --nv"),
    (f"apptainer exec --nv --rocm {IMG} {PROBE}", "remove --rocm"),
    (f"apptainer run --nv {IMG} {PROBE}", "use `apptainer exec`"),
    (f"apptainer exec --nv {IMG} python -c 'import torch'", "you run"),
    (f"apptainer exec --nv {IMG} nvidia-smi", "you run 'nvidia-smi'"),
])
def test_ex03_gpu_flag(answer, feedback):
    judge(check_command, answer, feedback, EX03)


# ------------------------------------------------------------------------------------------------
# ex04 · environment isolation
# ------------------------------------------------------------------------------------------------
_BASE4 = hw.ApptainerRun(action="exec", env=(hw.EnvVar("PYTHONNOUSERSITE", "1"),), binds=(hw.Bind("$SCRATCH/work", "/work"),),
                         cwd="/work", image=IMG, command=("python", "train.py"))
EX04 = [_BASE4.replace(cleanenv=True, no_home=True), _BASE4.replace(containall=True)]
W = "$SCRATCH/work"


@pytest.mark.parametrize("answer, feedback", [
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd /work {IMG} python train.py", None),
    (f"apptainer exec --containall --env PYTHONNOUSERSITE=1 -B {W}:/work --pwd /work {IMG} python train.py", None),
    (f"apptainer exec -C --env PYTHONNOUSERSITE=1 -B {W}:/work --pwd /work {IMG} python train.py", None),
    (f"apptainer exec -e --no-home --env=PYTHONNOUSERSITE=1 -B {W}:/work --cwd /work {IMG} python train.py", None),
    (f"singularity exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd /work {IMG} python train.py", None),
    (f'apptainer exec --cleanenv --no-home --env "PYTHONNOUSERSITE=1" --bind {W}:/work --pwd=/work/ {IMG} python train.py', None),
    # fixed: redundant isolation flags, APPTAINERENV_, python3
    (f"apptainer exec --cleanenv --containall --env PYTHONNOUSERSITE=1 -B {W}:/work --pwd /work {IMG} python train.py", None),
    (f"apptainer exec --containall --no-home --env PYTHONNOUSERSITE=1 -B {W}:/work --pwd /work {IMG} python train.py", None),
    (f"APPTAINERENV_PYTHONNOUSERSITE=1 apptainer exec --cleanenv --no-home --bind {W}:/work --pwd /work {IMG} python train.py", None),
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd /work {IMG} python3 train.py", None),
    # wrong
    (f"apptainer exec --cleanenv --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd /work {IMG} python train.py", "add --no-home"),
    (f"apptainer exec --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd /work {IMG} python train.py", "add --cleanenv"),
    (f"apptainer exec --cleanenv --no-home --bind {W}:/work --pwd /work {IMG} python train.py", "PYTHONNOUSERSITE is not set"),
    (f"PYTHONNOUSERSITE=1 apptainer exec --cleanenv --no-home --bind {W}:/work --pwd /work {IMG} python train.py",
     "PYTHONNOUSERSITE is not set"),
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=0 --bind {W}:/work --pwd /work {IMG} python train.py",
     "PYTHONNOUSERSITE is '0'"),
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work {IMG} python train.py", "add --pwd /work"),
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd {W} {IMG} python train.py",
     "--pwd is $SCRATCH/work; the task asks for /work"),
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --pwd /work {IMG} python train.py", "$SCRATCH/work is not bound"),
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work:ro --pwd /work {IMG} python train.py", "drop `:ro`"),
    (f"apptainer exec --contain --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd /work {IMG} python train.py", "add --containall"),
    (f"apptainer exec --cleanenv --no-home --env PYTHONNOUSERSITE=1 --bind {W}:/work --pwd /work {IMG} --containall python train.py",
     "--containall comes after the image"),
])
def test_ex04_isolation(answer, feedback):
    judge(check_command, answer, feedback, EX04)


# ------------------------------------------------------------------------------------------------
# ex05 · definition file and build
# ------------------------------------------------------------------------------------------------
BASE5 = "pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"
EX05 = {"bootstrap": "docker", "from_": pinned(), "post": contains("pip install", "scikit-learn==1.5.0"),
        "environment": (hw.EnvVar("PYTHONNOUSERSITE", "1"),)}


def deffile(frm=BASE5, post="pip install --no-cache-dir scikit-learn==1.5.0", env="export PYTHONNOUSERSITE=1",
            boot="docker"):
    return f"Bootstrap: {boot}\nFrom: {frm}\n\n%post\n    {post}\n\n%environment\n    {env}\n"


@pytest.mark.parametrize("answer, feedback", [
    (deffile(), None),
    (deffile(post="python -m pip install --no-cache-dir scikit-learn==1.5.0"), None),
    (deffile(post="pip install --no-cache-dir 'scikit-learn==1.5.0'"), None),
    (deffile(post="pip install --upgrade --no-cache-dir scikit-learn==1.5.0"), None),
    (deffile(env='export PYTHONNOUSERSITE="1"'), None),
    (deffile().replace("Bootstrap:", "bootstrap:").replace("From:", "from:"), None),
    (deffile(frm="docker.io/" + BASE5), None),
    (hw.DefFile(bootstrap="docker", from_=BASE5, post=("pip install --no-cache-dir scikit-learn==1.5.0",),
                environment=(hw.EnvVar("PYTHONNOUSERSITE", "1"),)), None),
    # fixed: pip3, and a variable exported on the next line
    (deffile(post="pip3 install --no-cache-dir scikit-learn==1.5.0"), None),
    (deffile(env="PYTHONNOUSERSITE=1\n    export PYTHONNOUSERSITE"), None),
    # wrong
    (deffile(post="pip install --no-cache-dir scikit-learn"), "text containing 'pip install' and 'scikit-learn==1.5.0'"),
    (deffile(post="pip install --no-cache-dir scikit-learn==1.4.0"), "scikit-learn==1.5.0"),
    (deffile(frm="pytorch/pytorch:latest"), "pinned version tag"),
    (deffile(frm="pytorch/pytorch"), "pinned version tag"),
    (deffile(env="export PYTHONNOUSERSITE=0"), "PYTHONNOUSERSITE is '0'"),
    (deffile(boot="library"), "bootstrap is library; the task asks for docker"),
    (deffile().replace("%environment", "%runscript"), "PYTHONNOUSERSITE is not set"),
    # fixed: these were accepted (a comment, --user) or explained wrongly (not exported)
    (deffile(post="pip install --no-cache-dir scikit-learn  # ==1.5.0"), "scikit-learn==1.5.0"),
    (deffile(post="pip install --no-cache-dir --user scikit-learn==1.5.0"), "HPC704"),
    (deffile(env="PYTHONNOUSERSITE=1"), "assigned but not exported"),
])
def test_ex05_deffile(answer, feedback):
    judge(check_model, answer, feedback, EX05, cls=hw.DefFile, parse=parse_deffile)


EX05B = hw.ApptainerBuild(fakeroot=True, output="$SCRATCH/images/ml-env.sif", source="ml-env.def")
SIF5 = "$SCRATCH/images/ml-env.sif"


@pytest.mark.parametrize("answer, feedback", [
    (f"apptainer build --fakeroot {SIF5} ml-env.def", None),
    (f"apptainer build -f {SIF5} ml-env.def", None),
    (f"singularity build --fakeroot {SIF5} ml-env.def", None),
    (f'apptainer build --fakeroot "{SIF5}" ml-env.def', None),
    (f"APPTAINER_CACHEDIR=$SCRATCH/.apptainer/cache apptainer build --fakeroot {SIF5} ml-env.def", None),
    # fixed: ./ml-env.def is ml-env.def; --force is harmless
    (f"apptainer build --fakeroot ${{SCRATCH}}/images/ml-env.sif ./ml-env.def", None),
    (f"apptainer build --fakeroot --force {SIF5} ml-env.def", None),
    # wrong
    (f"apptainer build {SIF5} ml-env.def", "add --fakeroot"),
    (f"apptainer build --fakeroot ml-env.def {SIF5}", "output is 'ml-env.def'"),
    ("apptainer build --fakeroot ml-env.sif ml-env.def", "output is 'ml-env.sif'"),
    (f"apptainer build --fakeroot --sandbox {SIF5} ml-env.def", "remove --sandbox"),
    # fixed: was "'sudo' is not a command this reader knows"
    (f"sudo apptainer build {SIF5} ml-env.def", "build as yourself with apptainer build --fakeroot"),
])
def test_ex05_build(answer, feedback):
    judge(check_command, answer, feedback, EX05B)


# ------------------------------------------------------------------------------------------------
# ex06 · Charliecloud
# ------------------------------------------------------------------------------------------------
CHI, D, W6 = "$SCRATCH/images/trainer", "$SCRATCH/data", "$SCRATCH/work"
EX06 = to_charliecloud(hw.parse_command(f"apptainer exec --no-home --bind {D}:/mnt/0 --bind {W6}:/mnt/1 {CHI} "
                                        "python /mnt/0/train.py --output /mnt/1")).result


@pytest.mark.parametrize("answer, feedback", [
    (f"ch-run -b {D}:/mnt/0 -b {W6}:/mnt/1 {CHI} -- python /mnt/0/train.py --output /mnt/1", None),
    (f"ch-run --bind={D}:/mnt/0 --bind={W6}:/mnt/1 {CHI} -- python /mnt/0/train.py --output /mnt/1", None),
    (f"ch-run --bind {D}:/mnt/0 --bind {W6}:/mnt/1 {CHI} -- python /mnt/0/train.py --output /mnt/1", None),
    (f"ch-run -b {W6}:/mnt/1 -b {D}:/mnt/0 {CHI} -- python /mnt/0/train.py --output /mnt/1", None),
    (f"ch-run -b {D}:/mnt/0 -b {W6}:/mnt/1 ${{SCRATCH}}/images/trainer/ -- python /mnt/0/train.py --output /mnt/1", None),
    # fixed: --output=/mnt/1 and python3
    (f"ch-run -b {D}:/mnt/0 -b {W6}:/mnt/1 {CHI} -- python /mnt/0/train.py --output=/mnt/1", None),
    (f"ch-run -b {D}:/mnt/0 -b {W6}:/mnt/1 {CHI} -- python3 /mnt/0/train.py --output /mnt/1", None),
    # wrong
    (f"ch-run --home -b {D}:/mnt/0 -b {W6}:/mnt/1 {CHI} -- python /mnt/0/train.py --output /mnt/1", "remove --home"),
    (f"ch-run -b {D}:/data -b {W6}:/mnt/1 {CHI} -- python /mnt/0/train.py --output /mnt/1", "the task wants it at /mnt/0"),
    (f"ch-run -b {D} -b {W6} {CHI} -- python /mnt/0/train.py --output /mnt/1", "the task wants it at /mnt/0"),
    (f"ch-run -b {D}:/mnt/0 -b {W6}:/mnt/1 {CHI}.sif -- python /mnt/0/train.py --output /mnt/1", "image is"),
    (f"ch-run -b {D}:/mnt/0 {CHI} -- python /mnt/0/train.py --output /mnt/1", "$SCRATCH/work is not bound"),
    (f"apptainer exec --no-home -B {D}:/mnt/0 -B {W6}:/mnt/1 {CHI} python /mnt/0/train.py --output /mnt/1",
     "the task asks for `ch-run`"),
    # fixed: was accepted: without -- ch-run reads --output as its own option
    (f"ch-run -b {D}:/mnt/0 -b {W6}:/mnt/1 {CHI} python /mnt/0/train.py --output /mnt/1", "put `--` between the image"),
    # fixed: was "the program writes there: drop `:ro`"; ch-run reads :ro as part of the destination
    (f"ch-run -b {D}:/mnt/0:ro -b {W6}:/mnt/1 {CHI} -- python /mnt/0/train.py --output /mnt/1",
     "ch-run has no bind modes: --bind $SCRATCH/data:/mnt/0:ro binds $SCRATCH/data at a directory named /mnt/0:ro"),
])
def test_ex06_charliecloud(answer, feedback):
    judge(check_command, answer, feedback, EX06)


# ------------------------------------------------------------------------------------------------
# ex07 · single-GPU batch job
# ------------------------------------------------------------------------------------------------
EX07 = {"partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 2, "mem": "3G", "time": "00:30:00",
        "container.nv": True, "container.rocm": False, "program": ("python", "train.py")}
#: the lint findings ex07–ex10 fail on besides errors: the site's Apptainer module is not loaded
MODULE_LINT = ("HPC409",)


def sbatch7(part="--partition=gpu", gres="--gres=gpu:1", cpus="--cpus-per-task=2", mem="--mem=3G",
            time="--time=00:30:00", extra="", mod="module load apptainer",
            run=f"apptainer exec --nv {IMG} python train.py"):
    lines = [f"#SBATCH {x}" for x in (part, gres, cpus, mem, time, extra) if x]
    return "#!/bin/bash\n" + "\n".join(lines) + "\n" + (mod + "\n" if mod else "") + run + "\n"


@pytest.mark.parametrize("answer, feedback", [
    (sbatch7(), None),
    (sbatch7(part="-p gpu", gres="--gpus-per-node=1", cpus="-c 2", mem="--mem=3072M", time="-t 30"), None),
    (sbatch7(gres="--gres=gpu:a100:1", time="--time=0:30:00", mem="--mem=3072"), None),
    (sbatch7(gres="--gpus=1"), None),
    (sbatch7(gres="--gres gpu:1", cpus="--cpus-per-task 2", time="--time 30:00"), None),
    (sbatch7(time="--time=0-00:30:00", mem="--mem=3g"), None),
    (sbatch7(extra="--job-name=train"), None),
    (sbatch7(extra="--output=train-%j.out"), None),
    (sbatch7(gres="--gres=gpu:1 # one GPU"), None),
    (sbatch7(run=f"srun apptainer exec --nv {IMG} python train.py"), None),
    (sbatch7(run=f'IMG={IMG}\napptainer exec --nv "$IMG" python train.py'), None),
    (sbatch7(run=f"singularity exec --nv {IMG} python train.py"), None),
    (sbatch7(run=f"apptainer exec --nv --cleanenv {IMG} python train.py"), None),
    (sbatch7(mod="set -euo pipefail\nmodule load apptainer/1.2.5"), None),
    # fixed: python3
    (sbatch7(run=f"apptainer exec --nv {IMG} python3 train.py"), None),
    # wrong
    (sbatch7(gres="--gres=gpu:2"), "the job gets 2 GPU(s) per node; the task asks for 1"),
    (sbatch7(gres=""), "the job gets 0 GPU(s) per node"),
    (sbatch7(part="--partition=cpu"), "#SBATCH --partition is cpu; the task asks for gpu"),
    (sbatch7(run=f"apptainer exec {IMG} python train.py"), "HPC201"),
    (sbatch7(run=f"apptainer exec {IMG} --nv python train.py"), "HPC203"),
    (sbatch7(mem="--mem=3M"), "#SBATCH --mem is 3M; the task asks for 3G"),
    (sbatch7(mem="--mem-per-cpu=3G"), "#SBATCH --mem is (not set)"),
    (sbatch7(cpus="--cpus-per-task=4"), "#SBATCH --cpus-per-task is 4; the task asks for 2"),
    (sbatch7(cpus="--ntasks=2"), "#SBATCH --cpus-per-task is (not set)"),
    (sbatch7(extra="--output=$HOME/logs/%j.out"), "HPC305"),
    (sbatch7(extra="--output=~/logs/%j.out"), "HPC311"),
    (sbatch7(run=f"apptainer exec --nv {IMG} python eval.py"), "program is python eval.py"),
    (sbatch7().replace("#!/bin/bash\n", ""), "HPC315"),
    # fixed: say how Slurm reads the time
    (sbatch7(time="--time=3:00"), "#SBATCH --time is 3:00 (3 minutes: Slurm reads M:SS); the task asks for 00:30:00 (30 minutes)"),
    (sbatch7(time="--time=30:00:00"), "#SBATCH --time is 30:00:00; the task asks for 00:30:00"),
    # fixed: was accepted, although the task asks to load the module and the job stops at 'command not found'
    (sbatch7(mod=""), "HPC409 apptainer comes from the module apptainer"),
])
def test_ex07_sbatch(answer, feedback):
    judge(check_script, answer, feedback, EX07, profile=PROF, lint_codes=MODULE_LINT)


#: ex07's answer without `module load`, as a learner writes it in the notebook
NO_MODULE7 = '''script = f"""#!/bin/bash
#SBATCH --partition={part.name}
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task={cpus}
#SBATCH --mem={mem}
#SBATCH --time={time}
{prof.apptainer_binary} exec {gpu_flag} {image} python train.py
"""'''


@pytest.mark.parametrize("profile", ["generic", "midway3"])
def test_ex07_notebook_refuses_a_job_without_the_module(profile):
    run_solution("ex07", profile=profile)   # the answer key passes
    with pytest.raises(AnswerError, match="HPC409"):
        run_solution("ex07", NO_MODULE7, profile=profile)


def test_ex07_text_follows_the_parameters():
    _, printed, markdown = run_solution("ex07", profile="midway3", cpus=8, mem="16G", time="02:00:00")
    assert "the job: 8 CPUs, 16G of memory, 02:00:00" in printed
    assert "--time=30`" not in markdown and "--mem=3G`" not in markdown   # examples that read as the values


# ------------------------------------------------------------------------------------------------
# ex08 · array sweep (built with the API)
# ------------------------------------------------------------------------------------------------
LRS = ["0.1", "0.03", "0.01", "0.003"]
EX08 = {"array": "0-3", "sweep_option": "--lr", "sweep_values": tuple(LRS), "output": contains("%a"),
        "partition": "gpu", "gpus_per_node": 1, "time": "20", "job_name": "lr-sweep", "runtime": "apptainer"}


def sweep(values=tuple(LRS), name="lr", **changes):
    kw = dict(container=hw.ApptainerRun(image=IMG), gpus_per_node=1, gpu_vendor="nvidia", partition="gpu",
              time="00:20:00", job_name="lr-sweep", modules=("apptainer",))
    kw.update(changes)
    return hw.Workflow.sweep(name, list(values), "train.py", **kw)


@pytest.mark.parametrize("answer, feedback", [
    (sweep(), None),
    (sweep(time="20"), None),
    (sweep(time="0:20:00"), None),
    (sweep(values=(0.1, 0.03, 0.01, 0.003)), None),
    (sweep(output="lr-%A_%a.out"), None),
    (sweep(gpu_vendor="nvidia"), None),
    # fixed: the program still gets --lr VALUE once per value (was "sweep_name is learning_rate"; "--array is 0-3%2")
    (sweep(name="learning_rate", flag="--lr"), None),
    (sweep(max_parallel=2), None),
    (render(sweep()), None),
    # wrong
    (sweep(name="learning_rate"), "the program gets each value with --learning-rate; the task asks for --lr VALUE"),
    (sweep(modules=()), "HPC409"),
    (sweep(gpus_per_node=2), "the job gets 2 GPU(s) per node; the task asks for 1"),
    (sweep(values=LRS[:3]), "#SBATCH --array is 0-2; the task asks for 0-3"),
    (sweep(output="lr-%j.out"), "#SBATCH --output is lr-%j.out; the task asks for text containing '%a'"),
    (sweep(job_name="sweep"), "#SBATCH --job-name is sweep; the task asks for lr-sweep"),
    # fixed: 00:20 is 20 seconds, and the wanted time is shown as H:MM:SS (was "the task asks for 20")
    (sweep(time="00:20"), "#SBATCH --time is 00:20 (20 seconds: Slurm reads M:SS); the task asks for 00:20:00 (20 minutes)"),
])
def test_ex08_sweep(answer, feedback):
    judge(check_script, answer, feedback, EX08, profile=PROF, lint_codes=MODULE_LINT)


@pytest.mark.parametrize("name, answer", [("ex08", "sweep"), ("ex09", "job")])
@pytest.mark.parametrize("profile", ["generic", "midway3"])
def test_ex08_ex09_answer_keys_load_the_apptainer_module(name, answer, profile):
    namespace, _, _ = run_solution(name, profile=profile)
    script = render(namespace[answer])
    assert "module load apptainer" in script
    assert [f.code for f in lint(script, hw.load_profile(profile)) if f.code == "HPC409"] == []


@pytest.mark.parametrize("answer", ['sweep = "#!/bin/bash\\n#SBATCH --array=0-3\\npython train.py"', "sweep = None"])
def test_ex08_notebook_explains_an_answer_that_is_not_a_model(answer):
    with pytest.raises(AnswerError):   # not an AttributeError from render() before the check
        run_solution("ex08", answer)


# ------------------------------------------------------------------------------------------------
# ex09 and ex10 · multi-node torchrun
# ------------------------------------------------------------------------------------------------
EX09 = {"partition": "gpu", "nodes": 2, "gpus_per_node": 4, "srun.ntasks_per_node": 1,
        "launcher.nproc_per_node": one_of("4", "$SLURM_GPUS_ON_NODE"),
        "launcher.nnodes": one_of("2", "$SLURM_NNODES", "$SLURM_JOB_NUM_NODES"),
        "launcher.rdzv_backend": "c10d", "container.nv": True}
HEAD = 'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
TR = "torchrun --nnodes={nn} --nproc-per-node={npn} --rdzv-backend=c10d --rdzv-endpoint={ep} --rdzv-id=$SLURM_JOB_ID ddp_train.py"


def job9(hdr=("--partition=gpu", "--nodes=2", "--ntasks-per-node=1", "--gres=gpu:4", "--time=01:00:00"), head=HEAD,
         srun="srun --ntasks-per-node=1", app=f"apptainer exec --nv {IMG}", nn="$SLURM_NNODES", npn="4",
         ep="$head_node:29500", tr=None, mod="module load apptainer"):
    step = tr or TR.format(nn=nn, npn=npn, ep=ep)
    return ("#!/bin/bash\n" + "".join(f"#SBATCH {h}\n" for h in hdr) + (mod + "\n" if mod else "") + head + "\n"
            + f"{srun} {app} {step}\n")


@pytest.mark.parametrize("answer, feedback", [
    (job9(), None),
    (job9(hdr=("-p gpu", "-N 2", "--ntasks-per-node=1", "--gpus-per-node=4", "-t 60")), None),
    (job9(hdr=("-p gpu", "-N 2", "--ntasks=2", "--ntasks-per-node=1", "--gres=gpu:a100:4", "-t 1:00:00")), None),
    (job9(hdr=("-p gpu", "--nodes=2", "--gres=gpu:4", "-t 1:00:00", "--cpus-per-task=32", "--exclusive")), None),
    (job9(srun="srun -N $SLURM_NNODES --ntasks-per-node=1 --label"), None),
    (job9(srun="srun --ntasks=2 --ntasks-per-node=1"), None),
    (job9(tr="torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=$head_node:29500 ddp_train.py"), None),
    (job9(tr="torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint $head_node:29500 ddp_train.py"), None),
    (job9(tr="python -m torch.distributed.run --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d "
             "--rdzv-endpoint=$head_node:29500 ddp_train.py"), None),
    (job9(nn="$SLURM_JOB_NUM_NODES", npn="$SLURM_GPUS_ON_NODE"), None),
    (job9(nn="${SLURM_NNODES}", ep='"${head_node}:29500"'), None),
    (job9(head='MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1)', ep="$MASTER_ADDR:29500"), None),
    (job9(head='export HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -1)', ep="$HEAD:29500"), None),
    (job9(head="head_node=$SLURMD_NODENAME"), None),   # the batch shell runs on the first node
    (job9(app=f"singularity exec --nv {IMG}"), None),
    (job9(app=f"apptainer run --nv {IMG}"), None),
    # fixed: --ntasks spread over --nodes is one task per node; --nproc-per-node=gpu is one worker per GPU
    (job9(srun="srun --nodes=2 --ntasks=2"), None),
    (job9(srun="srun -N 2 -n 2"), None),
    (job9(npn="gpu"), None),
    # fixed: sbatch sets $SLURM_GPUS_PER_NODE to 4 for --gpus-per-node=4 (was "the task asks for one of …")
    (job9(hdr=("-p gpu", "-N 2", "--ntasks-per-node=1", "--gpus-per-node=4", "-t 60"), npn="$SLURM_GPUS_PER_NODE"), None),
    (job9(hdr=("-p gpu", "-N 2", "--ntasks-per-node=1", "--gpus-per-node=4", "-t 60"), npn='"${SLURM_GPUS_PER_NODE}"'),
     None),
    # wrong
    # fixed: was "the task asks for one of '4', '$SLURM_GPUS_ON_NODE'", with no word why
    (job9(npn="$SLURM_GPUS_PER_NODE"), "$SLURM_GPUS_PER_NODE is set only when the job asks for GPUs with "
                                       "#SBATCH --gpus-per-node=N, so it is empty here"),
    (job9(hdr=("-p gpu", "-N 2", "--ntasks-per-node=1", "--gpus-per-node=a100:4", "-t 60"), npn="$SLURM_GPUS_PER_NODE"),
     "$SLURM_GPUS_PER_NODE is a100:4 here"),
    # fixed: these were accepted, yet torchrun gets the text $head_node (srun and apptainer run it without a shell);
    # the check says so, or the linter (HPC114) where it explains it
    (job9(ep="'$head_node:29500'"), "single quotes"),
    (job9(nn="'$SLURM_NNODES'"), "single quotes"),
    (job9(mod=""), "HPC409"),
    (job9(hdr=("-p gpu", "-N 2", "--ntasks-per-node=4", "--gres=gpu:4", "-t 60"), srun="srun"), "HPC101"),
    (job9(srun="srun --ntasks-per-node=4"), "HPC101"),
    (job9(ep="$SLURM_JOB_NODELIST:29500"), "HPC102"),
    (job9(ep="$SLURM_NODELIST:29500"), "HPC102"),
    (job9(ep="localhost:29500"), "HPC103"),
    (job9(tr="torchrun --standalone --nnodes=2 --nproc-per-node=4 ddp_train.py"), "HPC113"),
    (job9(npn="1"), "torchrun --nproc-per-node is 1"),
    (job9(npn="8"), "HPC108"),
    (job9(nn="1"), "HPC112"),
    (job9(npn="$SLURM_NTASKS_PER_NODE"), "torchrun --nproc-per-node is $SLURM_NTASKS_PER_NODE"),
    (job9(tr="torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=static --rdzv-endpoint=$head_node:29500 ddp_train.py"),
     "the static rendezvous (torchrun's default without --rdzv-backend=c10d) needs each node's --node-rank"),
    (job9(app=f"apptainer exec {IMG}"), "HPC201"),
    (job9(hdr=("-p gpu", "-N 1", "--gres=gpu:4", "-t 60")), "#SBATCH --nodes is 1; the task asks for 2"),
    (job9(hdr=("-p gpu", "-N 2", "--gres=gpu:2", "-t 60")), "the job gets 2 GPU(s) per node"),
    (job9(hdr=("-p cpu", "-N 2", "--gres=gpu:4", "-t 60")), "#SBATCH --partition is cpu"),
    (job9(srun=""), "there is no srun layer"),
    (job9(srun="srun --nodes=2 --ntasks=4"), "HPC101 srun starts 2 torchrun launchers on each node"),
    # fixed: this was accepted although $head_node is empty
    (job9(head=""), "uses $head_node, which the script never sets"),
])
def test_ex09_multinode(answer, feedback):
    judge(check_script, answer, feedback, EX09, profile=PROF, lint_codes=MODULE_LINT)



EX10 = {"nodes": 2, "gpus_per_node": 4, "partition": "gpu", "srun.ntasks_per_node": 1,
        "launcher.nproc_per_node": one_of("4", "$SLURM_GPUS_ON_NODE"),
        "launcher.rdzv_endpoint": one_host()}
DECK10 = """#!/bin/bash
#SBATCH --job-name=dist-ml-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node={tpn}
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --partition=gpu
module load apptainer
CONTAINER_IMAGE=$SCRATCH/images/ml_container.sif
{head}
srun {srun} apptainer run --nv \\
  --bind $SCRATCH/data:/data \\
  $CONTAINER_IMAGE \\
  torchrun --nnodes=$SLURM_NNODES \\
           --nproc_per_node={npn} \\
           --rdzv_id=$SLURM_JOB_ID \\
           --rdzv_backend=c10d \\
           --rdzv_endpoint={ep} \\
           /data/distributed_train.py
"""


def deck10(tpn="4", head=HEAD, srun="--ntasks=2 --ntasks-per-node=1", npn="4", ep="$head_node:29500"):
    return DECK10.format(tpn=tpn, head=head, srun=srun, npn=npn, ep=ep)


@pytest.mark.parametrize("answer, feedback", [
    (deck10(), None),
    (deck10(tpn="1", srun="--ntasks-per-node=1"), None),
    (deck10(srun="-n 2 --ntasks-per-node=1"), None),
    (deck10(npn="$SLURM_GPUS_ON_NODE"), None),
    (deck10(ep="${head_node}:29500"), None),
    (deck10(head='head_node=$(scontrol show hostname $SLURM_JOB_NODELIST | head -1)'), None),
    (deck10(head='MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)', ep="$MASTER:29500"), None),
    (deck10(tpn="1", srun="--ntasks-per-node=1 --cpus-per-task=8"), None),
    (deck10(ep="$(hostname):29500"), None),   # expanded by the batch shell, on the first node
    # fixed: the first node, computed in place by the batch shell (was "the task asks for one host and a port")
    (deck10(head="", ep='$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):29500'), None),
    # fixed: srun inherits --ntasks-per-node=1; --ntasks over --nodes; --nproc-per-node=gpu
    (deck10(tpn="1", srun=""), None),
    (deck10(srun="--nodes=2 --ntasks=2"), None),
    (deck10(srun="-N2 -n2"), None),
    (deck10(npn="gpu"), None),
    # wrong
    (deck10(srun="--ntasks-per-node=1"), "srun takes the job's task count"),
    (deck10(srun=""), "HPC101"),
    (deck10(srun="--ntasks=8 --ntasks-per-node=4"), "HPC101"),
    (deck10(npn="$SLURM_NTASKS_PER_NODE"), "torchrun --nproc-per-node is $SLURM_NTASKS_PER_NODE"),
    (deck10(npn="8"), "HPC108"),
    (deck10(ep="$SLURM_STEP_NODELIST:29500"), "HPC102"),
    (deck10(ep="$SLURM_JOB_NODELIST:29500"), "HPC102"),
    (deck10(ep="${SLURM_NODELIST}:29500"), "HPC102"),
    (deck10(ep="localhost:29500"), "HPC103"),
    (deck10(head="", ep='$(scontrol show hostnames "$SLURM_JOB_NODELIST"):29500'), "one host and a port"),
    # fixed: was accepted, yet torchrun gets the text $head_node
    (deck10(ep="'$head_node:29500'"), "single quotes"),
    (deck10().replace("module load apptainer\n", ""), "HPC409"),
    # fixed: was accepted although $head_node is never set
    (deck10(head=""), "uses $head_node, which the script never sets"),
])
def test_ex10_fixed_deck(answer, feedback):
    judge(check_script, answer, feedback, EX10, profile=PROF, lint_codes=MODULE_LINT)


def test_ex10_fix_script_output_passes():
    broken = deck10(head="", srun="", npn="$SLURM_NTASKS_PER_NODE", ep="$SLURM_STEP_NODELIST:29500")
    fixed, _ = hw.fix_script(broken, PROF)
    check_script(fixed, EX10, profile=PROF, lint_codes=MODULE_LINT)


@pytest.mark.parametrize("script", [job9(ep="'$head_node:29500'"), deck10(ep="'$head_node:29500'")])
def test_ex09_ex10_single_quoted_endpoint_names_the_option_and_the_quotes(script):
    with pytest.raises(AnswerError) as info:
        check_script(script, {"nodes": 2}, profile=PROF)
    problems = [p for p in info.value.problems if "--rdzv-endpoint" in p]
    assert len(problems) == 1 and "single quotes" in problems[0] and "$head_node:29500" in problems[0], problems
    with pytest.raises(AnswerError) as info:   # the check's own sentence, whatever the linter reports
        check_script(script, {"nodes": 2}, profile=PROF, lint_severities=())
    assert info.value.problems == ("torchrun --rdzv-endpoint is '$head_node:29500' in single quotes: " + QUOTES,)


# ------------------------------------------------------------------------------------------------
# ex11 · JupyterLab job and tunnel
# ------------------------------------------------------------------------------------------------
_LAB = hw.JupyterJob.for_profile(PROF)
EX11 = {"login_host": PROF.login_host, "job.partition": PROF.default().name, "job.time": "01:00:00", "job.cpus_per_task": 2}


@pytest.mark.parametrize("answer, feedback", [
    (_LAB.replace(job=_LAB.job.replace(time="01:00:00", cpus_per_task=2)), None),
    (_LAB.replace(job=_LAB.job.replace(time="1:00:00", cpus_per_task=2)), None),
    (_LAB.replace(job=_LAB.job.replace(time="60", cpus_per_task=2)), None),
    (_LAB.replace(job=_LAB.job.replace(time="02:00:00", cpus_per_task=2)), "#SBATCH --time is 02:00:00; the task asks for 01:00:00"),
    (_LAB.replace(job=_LAB.job.replace(time="01:00:00", cpus_per_task=4)), "#SBATCH --cpus-per-task is 4; the task asks for 2"),
    (_LAB.replace(job=_LAB.job.replace(time="01:00:00", partition="gpu")), "#SBATCH --partition is gpu"),
    (_LAB.replace(login_host="login2", job=_LAB.job.replace(time="01:00:00")), "login_host is login2"),
    (_LAB.replace(job=_LAB.job.replace(time="1:00")), "(1 minute: Slurm reads M:SS)"),
    ("hello", "build the answer with the API"),
])
def test_ex11_jupyter_job(answer, feedback):
    judge(check_model, answer, feedback, EX11, cls=hw.JupyterJob)


LOGIN = PROF.login_host


@pytest.mark.parametrize("answer, feedback", [
    (f"ssh -N -L 8888:n1:23456 $USER@{LOGIN}", None),
    (f"ssh -N -L 8888:n1:23456 {LOGIN}", None),
    (f"ssh -L 8888:n1:23456 -N alice@{LOGIN}", None),
    (f"ssh -N -f -L 8888:n1:23456 alice@{LOGIN}", None),
    (f"ssh -fN -L 8888:n1:23456 alice@{LOGIN}", None),
    (f"ssh -N -L8888:n1:23456 ${{USER}}@{LOGIN}", None),
    (f"ssh -N -L 8888:n1:23456 -l alice {LOGIN}", None),
    (f"ssh -o ServerAliveInterval=60 -N -L 8888:n1:23456 alice@{LOGIN}", None),
    (f"ssh -i ~/.ssh/id_ed25519 -p 22 -N -L 8888:n1:23456 alice@{LOGIN}", None),
    (f"ssh -N -L 8888:n1:23456 -L 9999:n2:1 alice@{LOGIN}", None),   # an extra forward is harmless
    # fixed: bundled -NL, a bind address, the node's full name, a jump through the login host
    (f"ssh -NL 8888:n1:23456 {LOGIN}", None),
    (f"ssh -N -L localhost:8888:n1:23456 alice@{LOGIN}", None),
    (f"ssh -N -L 127.0.0.1:8888:n1:23456 alice@{LOGIN}", None),
    (f"ssh -N -L 8888:n1.cluster.example.edu:23456 alice@{LOGIN}", None),
    (f"ssh -N -J alice@{LOGIN} -L 8888:localhost:23456 alice@n1", None),
    # fixed: OpenSSH reads options after the destination too (was "there is no -L", "add -N", "a remote command")
    (f"ssh alice@{LOGIN} -N -L 8888:n1:23456", None),
    (f"ssh -N alice@{LOGIN} -L 8888:n1:23456", None),
    # wrong
    (f"ssh alice@{LOGIN} -L 8888:n1:23456", "add -N"),
    (f"ssh alice@{LOGIN} -N -L 8888:n1:23456 jupyter lab", "'jupyter lab' after the host is a remote command"),
    (f"ssh -L 8888:n1:23456 -- alice@{LOGIN} -N", "'-N' after the host is a remote command"),
    (f"ssh -N -L 8888:localhost:23456 alice@{LOGIN}", "forwards to the login node itself"),
    (f"ssh -N -L 23456:n1:8888 alice@{LOGIN}", "listens on port 23456"),
    (f"ssh -N -L 9999:n1:23456 alice@{LOGIN}", "the local end is 9999"),
    (f"ssh -N -L 8888:n2:23456 alice@{LOGIN}", "the forward goes to n2; the server runs on n1"),
    (f"ssh -N -L 8888:{LOGIN}:23456 alice@{LOGIN}", "the server runs on n1"),
    (f"ssh -N -L 8888:n1 alice@{LOGIN}", "write LOCAL_PORT:COMPUTE_NODE:NODE_PORT"),
    ("ssh -N -L 8888:n1:23456 alice@n1", "connect to the login host"),
    (f"ssh -L 8888:n1:23456 alice@{LOGIN}", "add -N"),
    (f"ssh -N -R 8888:n1:23456 alice@{LOGIN}", "-R forwards the other way"),
    (f"ssh -N -D 8888 alice@{LOGIN}", "there is no -L"),
    ("ssh -NL 8888:n1:23456", "ssh goes to (nothing)"),
    (f"ssh -N -L 8888:n1:23456 alice@{LOGIN} jupyter lab", "is a remote command"),
    (f"ssh -N -J alice@{LOGIN} -L 8888:n2:23456 alice@n1", "the forward goes to n2"),
])
def test_ex11_tunnel(answer, feedback):
    judge(check_tunnel, answer, feedback, node="n1", port=23456, login_host=LOGIN, local_port=8888)


# ------------------------------------------------------------------------------------------------
# ex12 · MPI hybrid launch
# ------------------------------------------------------------------------------------------------
MPI_IMG, PROG = "$SCRATCH/images/mpi-app.sif", "/opt/app/hello_mpi"
EX12 = hw.Srun(mpi="pmix", nodes=2, ntasks_per_node=2, command=("apptainer", "exec", MPI_IMG, PROG))


@pytest.mark.parametrize("answer, feedback", [
    (f"srun --mpi=pmix --nodes=2 --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", None),
    (f"srun --mpi=pmix -N 2 --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", None),
    (f"srun --mpi pmix -N2 --ntasks-per-node 2 singularity exec {MPI_IMG} {PROG}", None),
    (f'srun --mpi=pmix --nodes=2 --ntasks-per-node=2 apptainer exec "{MPI_IMG}" {PROG}', None),
    # fixed: -n over -N, a consistent -n, pmix_vN, --label
    (f"srun --mpi=pmix -N 2 -n 4 apptainer exec {MPI_IMG} {PROG}", None),
    (f"srun --mpi=pmix --nodes=2 --ntasks=4 --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", None),
    (f"srun --mpi=pmix_v4 --nodes=2 --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", None),
    (f"srun --mpi=pmix --nodes=2 --ntasks-per-node=2 --label apptainer exec {MPI_IMG} {PROG}", None),
    # wrong
    (f"srun --mpi=pmix --nodes=2 --ntasks-per-node=2 apptainer exec {MPI_IMG} mpirun {PROG}", "HPC214"),
    (f"srun --ntasks-per-node=1 apptainer exec {MPI_IMG} mpirun -n 2 {PROG}", "add --mpi=pmix"),
    (f"srun --nodes=2 --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", "add --mpi=pmix"),
    (f"srun --mpi=pmi2 --nodes=2 --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", "--mpi is pmi2; the task asks for pmix"),
    (f"srun --mpi=pmix --nodes=2 --ntasks-per-node=4 apptainer exec {MPI_IMG} {PROG}", "--ntasks-per-node is 4"),
    (f"srun --mpi=pmix -N 2 -n 2 apptainer exec {MPI_IMG} {PROG}", "--ntasks-per-node is 1; the task asks for 2"),
    (f"srun --mpi=pmix --nodes=1 --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", "--nodes is 1"),
    (f"srun --mpi=pmix --ntasks-per-node=2 apptainer exec {MPI_IMG} {PROG}", "add --nodes=2"),
    (f"srun --mpi=pmix --nodes=2 --ntasks-per-node=2 {MPI_IMG} {PROG}", "the command after srun should be"),
    (f"srun --mpi=pmix --nodes=2 --ntasks-per-node=2 apptainer run {MPI_IMG} {PROG}", "use `apptainer exec`"),
    (f"srun --mpi=pmix --nodes=2 --ntasks-per-node=2 apptainer exec --cleanenv {MPI_IMG} {PROG}", "remove --cleanenv"),
    (f"apptainer exec {MPI_IMG} srun --mpi=pmix --nodes=2 --ntasks-per-node=2 {PROG}", "the task asks for `srun`"),
    # fixed: was "'mpirun' is not a command this reader knows", then "in the hybrid model Slurm starts them"
    # (lesson 12: host mpirun around the container works with a matching MPI; HPC215 is advice)
    (f"mpirun -n 4 apptainer exec {MPI_IMG} {PROG}", "works when the host's MPI matches the image's (HPC215, advice)"),
])
def test_ex12_mpi(answer, feedback):
    judge(check_command, answer, feedback, EX12)


def test_ex12_demo_shows_what_its_text_promises():
    _, printed, markdown = run_solution("ex12")
    assert "HPC214" in markdown and "HPC215" in markdown and "(and the linter)" not in markdown
    assert "error HPC214 mpirun runs inside the container" in printed
    assert "info HPC215 mpirun on the host starts the container ranks" in printed
    assert "in the hybrid model Slurm starts them" not in printed
