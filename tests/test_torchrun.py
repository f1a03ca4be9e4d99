import pytest

from hpcwidgets.render.command import argv
from hpcwidgets.spec import Torchrun


def test_multi_node_is_the_correct_pattern():
    t = Torchrun.multi_node(2, 4, "train.py", ("--epochs", "3"))
    assert argv(t) == ["torchrun", "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
                       "--rdzv-endpoint=$head_node:29500", "--rdzv-id=$SLURM_JOB_ID", "train.py", "--epochs", "3"]
    assert t.problems() == [] and t.uses_head_node and t.nnodes_int == 2 and t.nproc_int == 4


def test_single_node_standalone():
    t = Torchrun.single_node(4, "train.py")
    assert argv(t) == ["torchrun", "--standalone", "--nnodes=1", "--nproc-per-node=4", "train.py"]
    assert t.problems() == []


def test_module_launcher_splits_into_words():
    t = Torchrun(program="python -m torch.distributed.run", standalone=True, nproc_per_node="2", script="t.py")
    assert argv(t)[:4] == ["python", "-m", "torch.distributed.run", "--standalone"]


@pytest.mark.parametrize("kwargs,field,text", [
    ({"nnodes": "2", "nproc_per_node": "4"}, "rdzv_endpoint", "head node"),
    ({"nnodes": "2", "rdzv_endpoint": "$SLURM_STEP_NODELIST:29500"}, "rdzv_endpoint", "node list"),
    ({"nnodes": "2", "rdzv_backend": "c10d", "rdzv_endpoint": "$head_node:29500", "node_rank": "$SLURM_NODEID"},
     "node_rank", "ignored by the c10d"),
    ({"nnodes": "2", "rdzv_endpoint": "$head_node:29500", "node_rank": "0", "master_addr": "n1"},
     "master_addr", "meets at --rdzv-endpoint"),
    ({"standalone": True, "rdzv_endpoint": "x:1"}, "rdzv_endpoint", "ignores"),
    ({"standalone": True, "nnodes": "2"}, "standalone", "one node"),
    ({"nproc_per_node": "four"}, "nproc_per_node", "number, gpu"),
    ({"nnodes": "2-4", "rdzv_endpoint": "h:1"}, "nnodes", "MIN:MAX"),
])
def test_problems(kwargs, field, text):
    problems = Torchrun(script="train.py", **kwargs).problems()
    assert any(p.field == field and text in p.message for p in problems), problems


def test_the_static_rendezvous_at_an_endpoint_still_reads_each_nodes_rank():
    # torchrun's default backend is static: with --rdzv-endpoint it meets there, and --node-rank numbers the nodes
    for backend in ("", "static"):
        t = Torchrun(nnodes="2", rdzv_backend=backend, rdzv_endpoint="$head_node:29500", node_rank="$NODE_RANK",
                     script="t.py")
        assert t.problems() == [], backend


def test_static_backend_may_use_master_addr():
    t = Torchrun(nnodes="2", rdzv_backend="static", master_addr="n1", master_port=29500, node_rank="0", script="t.py")
    assert t.problems() == []


@pytest.mark.parametrize("kwargs,ok", [
    ({"nnodes": "2", "master_addr": "$MASTER", "master_port": 29500}, False),          # static by default: all rank 0
    ({"nnodes": "2", "master_addr": "$MASTER", "node_rank": "$SLURM_NODEID"}, True),
    ({"nnodes": "2", "rdzv_backend": "static", "master_addr": "$MASTER", "node_rank": "0"}, True),
    ({"nnodes": "1", "master_addr": "localhost"}, True),                                # one node: rank 0 is right
])
def test_the_static_rendezvous_on_several_nodes_needs_node_ranks(kwargs, ok):
    problems = [p for p in Torchrun(script="train.py", nproc_per_node="4", **kwargs).problems() if p.field == "node_rank"]
    assert (problems == []) is ok, problems
