"""Source of the deck's diagrams: ``python -m hpcwidgets.slides diagrams [--profile NAME]`` writes one SVG per
entry of DIAGRAMS.

Plain SVG written from Python (no diagram service, nothing runs in the browser). Each function gets the
profile the deck is built for. What a picture shows of a site comes from that profile's examples, the same
models the deck's scripts are rendered from, so the pictures and the scripts cannot disagree: the image's
path in the workflow, the nodes, processes per node and rendezvous port in the multi-node topology. Write
no site's paths or names here by hand: ``slides check --profile NAME`` compares the SVGs with what this file
draws for NAME, not what the text says.
"""

from __future__ import annotations

import posixpath

from hpcwidgets.examples import examples
from hpcwidgets.slides import Svg

INK = "#1f2933"
GREY = "#52606d"
LIGHT = "#f5f7fa"
BLUE = "#dbeafe"
BLUE_LINE = "#2563eb"
TEAL = "#ccfbf1"
TEAL_LINE = "#0f766e"
AMBER = "#fef3c7"
AMBER_LINE = "#b45309"
ROSE = "#ffe4e6"
ROSE_LINE = "#be123c"
GREEN = "#dcfce7"
GREEN_LINE = "#15803d"


def containers_vs_vms(profile: str) -> Svg:
    s = Svg(1000, 460, "Virtual machines each boot a guest OS on a hypervisor; containers share the host kernel")
    for x0, title in ((20, "Virtual machines"), (520, "Containers (Apptainer, Charliecloud)")):
        s.text(x0 + 230, 28, title, size=22, weight="bold")
    # VM stack
    s.box(20, 400, 460, 50, "hardware (CPUs, GPUs, network)", fill=LIGHT)
    s.box(20, 340, 460, 50, "host OS and kernel", fill=LIGHT)
    s.box(20, 280, 460, 50, "hypervisor", fill=AMBER, stroke=AMBER_LINE)
    for i, x in enumerate((20, 255)):
        s.box(x, 60, 225, 210, "", fill="#ffffff", stroke=AMBER_LINE, dash="6 4")
        s.box(x + 12, 200, 201, 56, "guest OS + kernel", fill=AMBER, stroke=AMBER_LINE, size=16)
        s.box(x + 12, 136, 201, 56, "libraries", fill=BLUE, stroke=BLUE_LINE, size=16)
        s.box(x + 12, 72, 201, 56, f"app {i + 1}", fill=TEAL, stroke=TEAL_LINE, size=16)
    # container stack
    s.box(520, 400, 460, 50, "hardware (CPUs, GPUs, network)", fill=LIGHT)
    s.box(520, 340, 460, 50, "host OS and kernel (shared)", fill=LIGHT)
    s.box(520, 280, 460, 50, "runtime: apptainer / ch-run (no daemon)", fill=GREEN, stroke=GREEN_LINE)
    for i, x in enumerate((520, 755)):
        s.box(x, 136, 225, 134, "", fill="#ffffff", stroke=GREEN_LINE, dash="6 4")
        s.box(x + 12, 200, 201, 56, "libraries", fill=BLUE, stroke=BLUE_LINE, size=16)
        s.box(x + 12, 148, 201, 46, f"app {i + 1}", fill=TEAL, stroke=TEAL_LINE, size=16)
    s.text(750, 95, "no guest kernel: starts in about a second,\nruns as you, sees the host's GPUs and network",
           size=16, fill=GREY)
    return s


def image_label(profile: str) -> str:
    """The example image as the workflow shows it: its folder and file name (a whole path does not fit)."""
    image = examples(profile)["single-gpu"].model.container.image
    folder, name = posixpath.split(image.rstrip("/"))
    return f"…/{posixpath.basename(folder)}/{name}" if folder else name


def container_workflow(profile: str) -> Svg:
    s = Svg(1200, 500, "From an image to results: build or pull on the login node, run in a Slurm job")
    s.box(10, 10, 1180, 200, "", fill=LIGHT, stroke="#cbd2d9", rx=14)
    s.text(30, 36, "login node (or your laptop)", size=17, weight="bold", anchor="start", fill=GREY)
    s.box(10, 240, 1180, 250, "", fill=LIGHT, stroke="#cbd2d9", rx=14)
    s.text(30, 266, "compute node(s), inside the Slurm job", size=17, weight="bold", anchor="start", fill=GREY)
    top = [
        (40, "1. get an image\npull docker://…:tag\nor build (def / Dockerfile)", BLUE, BLUE_LINE),
        (330, f"2. keep it on scratch\n{image_label(profile)}\ncache and tmp there too", TEAL, TEAL_LINE),
        (620, "3. write the job script\nhpcwidgets examples …\nhpcwidgets lint job.sbatch", AMBER, AMBER_LINE),
        (910, "4. submit\nsbatch job.sbatch\n→ job id", GREEN, GREEN_LINE),
    ]
    for x, label, fill, line in top:
        s.box(x, 70, 250, 120, label, fill=fill, stroke=line, size=16)
    for x in (290, 580, 870):
        s.arrow(x, 130, x + 40, 130)
    s.arrow(1035, 190, 1035, 300, "Slurm allocates", label_dx=-80, label_dy=0)
    bottom = [
        (910, "5. job starts\nmodules, exports,\nmkdir for results", GREEN, GREEN_LINE),
        (620, "6. launch the step\n(srun per node)\napptainer exec --nv", BLUE, BLUE_LINE),
        (330, "7. program runs\npython train.py\nbinds: code, data, output", TEAL, TEAL_LINE),
        (40, "8. results on scratch\nlogs: %x-%j.out\ncheck: sacct -j JOBID", AMBER, AMBER_LINE),
    ]
    for x, label, fill, line in bottom:
        s.box(x, 300, 250, 120, label, fill=fill, stroke=line, size=16)
    for x in (910, 620, 330):
        s.arrow(x, 360, x - 40, 360)
    s.text(600, 460, "the image is read-only: everything the job writes goes through a bind mount",
           size=16, fill=GREY, style="italic")
    return s


def job_lifecycle(profile: str) -> Svg:
    s = Svg(1200, 460, "The life of a Slurm batch job: states and the commands that show them")
    s.box(20, 170, 170, 80, "sbatch job.sbatch", fill=LIGHT, mono=True, size=16)
    s.box(260, 170, 180, 80, "PENDING\nwaits for resources", fill=AMBER, stroke=AMBER_LINE, size=16, weight="bold")
    s.box(520, 170, 200, 80, "RUNNING\nscript on first node", fill=BLUE, stroke=BLUE_LINE, size=16, weight="bold")
    ends = [
        (40, "COMPLETED", "exit status 0", GREEN, GREEN_LINE),
        (130, "FAILED", "a command failed (set -e)", ROSE, ROSE_LINE),
        (220, "TIMEOUT", "hit --time: checkpoint!", ROSE, ROSE_LINE),
        (310, "CANCELLED", "scancel JOBID", LIGHT, GREY),
    ]
    for y, state, why, fill, line in ends:
        s.box(860, y, 320, 72, f"{state}\n{why}", fill=fill, stroke=line, size=16)
        s.arrow(720, 210, 858, y + 36)
    s.arrow(190, 210, 258, 210, "job id", label_dy=-14)
    s.arrow(440, 210, 518, 210, "allocated", label_dy=-14)
    s.arrow(350, 250, 858, 350, "", dash="6 4")
    s.text(560, 335, "scancel while pending", size=15, fill=GREY)
    s.text(350, 110, "squeue --me\n(ST: PD)", size=16, fill=GREY, family="DejaVu Sans Mono, monospace")
    s.text(620, 110, "squeue --me  (ST: R)\nsrun starts the steps", size=16, fill=GREY,
           family="DejaVu Sans Mono, monospace")
    s.text(600, 430, "afterwards: sacct -j JOBID --format=JobID,State,Elapsed,MaxRSS   ·   the log: %x-%j.out",
           size=16, fill=GREY, family="DejaVu Sans Mono, monospace")
    return s


def multi_node_topology(profile: str) -> Svg:
    wf = examples(profile)["multi-node-torchrun"].model
    nodes = int(wf.job.nodes)
    procs = int(wf.launcher.nproc_per_node)
    endpoint = wf.launcher.rdzv_endpoint
    port = endpoint.rsplit(":", 1)[-1]
    node_w = 540
    width = 40 + nodes * (node_w + 40)
    s = Svg(width, 600, f"{nodes} nodes × {procs} GPUs: srun starts one torchrun per node; "
                        f"each starts {procs} workers, one per GPU; c10d rendezvous on the first node")
    s.box(20, 14, width - 40, 54, f"sbatch job: --nodes={nodes}  --ntasks-per-node=1  --gres=gpu:{procs}   "
                                  f"·   head_node = first host of $SLURM_JOB_NODELIST (on the host)",
          fill=LIGHT, size=16, mono=True)
    for n in range(nodes):
        x = 40 + n * (node_w + 40)
        s.box(x, 100, node_w, 440, "", fill="#ffffff", stroke=GREY, rx=16)
        name = "node 1 = $head_node" if n == 0 else f"node {n + 1}"
        s.text(x + 20, 126, name, size=18, weight="bold", anchor="start")
        s.box(x + 20, 145, node_w - 40, 50, "srun: 1 task on this node → apptainer exec --nv",
              fill=GREEN, stroke=GREEN_LINE, size=16)
        agent_label = f"torchrun (1 agent)  --nproc-per-node={procs}\n"
        agent_label += f"hosts the c10d rendezvous on port {port}" if n == 0 else f"joins the rendezvous at {endpoint}"
        s.box(x + 20, 215, node_w - 40, 70, agent_label, fill=AMBER, stroke=AMBER_LINE, size=16)
        w = (node_w - 40 - (procs - 1) * 10) / procs
        for p in range(procs):
            px = x + 20 + p * (w + 10)
            rank = n * procs + p
            s.box(px, 330, w, 70, f"worker\nrank {rank}", fill=BLUE, stroke=BLUE_LINE, size=15)
            s.box(px, 440, w, 70, f"GPU {p}", fill=TEAL, stroke=TEAL_LINE, size=16, weight="bold")
            s.arrow(px + w / 2, 400, px + w / 2, 438)
            s.arrow(x + node_w / 2, 285, px + w / 2, 328)
    for n in range(1, nodes):
        x = 40 + n * (node_w + 40)
        s.arrow(x + 20, 250, 40 + node_w - 20, 250, dash="7 5")
    s.text(width / 2, 572, f"{nodes * procs} workers in all (WORLD_SIZE={nodes * procs}); "
                                "gradients are all-reduced across both nodes (NCCL)", size=15, fill=GREY)
    return s


DIAGRAMS = {
    "containers-vs-vms": containers_vs_vms,
    "container-workflow": container_workflow,
    "job-lifecycle": job_lifecycle,
    "multi-node-topology": multi_node_topology,
}
