"""The ML payload scripts (hpcwidgets/payload): run them as lessons and jobs do, as plain scripts."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hpcwidgets import payload
from hpcwidgets.errors import HpcWidgetsError
from helpers import need

HAVE_ML = all(importlib.util.find_spec(name) is not None for name in ("torch", "numpy", "sklearn"))
EPOCH_LINE = re.compile(r"^epoch=(\d+) loss=(\d+\.\d{4}) val_acc=([01]\.\d{4}) samples_per_sec=(\d+\.\d)$", re.M)
RANK_LINE = re.compile(r"^rank=(\d+) world_size=(\d+) local_rank=(\d+) host=(\S+) backend=(\w+)$", re.M)
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "TORCHELASTIC_RUN_ID")
ALLOWED_THIRD_PARTY = {"torch", "numpy", "sklearn"}


@pytest.fixture
def ml() -> None:
    need(HAVE_ML, "torch, numpy and scikit-learn are needed to run the payload (pip install 'hpcwidgets[ml]')")


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without any launcher variables, one CPU thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def run_script(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # the timeout only keeps a hung rendezvous from hanging the suite; nothing is asserted about time
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    return proc


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return proc.stdout


def epochs_logged(stdout: str) -> list[tuple[int, float]]:
    return [(int(m.group(1)), float(m.group(2))) for m in EPOCH_LINE.finditer(stdout)]


def load_module(name: str):
    """Import a payload script in this process (for its functions and error paths)."""
    module_name = f"_hpcw_payload_{name.removesuffix('.py')}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, payload.path(name))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def torch_threads(ml):
    """In-process runs set torch's thread count; put it back afterwards."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- the package side


def test_path_finds_every_shipped_script():
    for name in payload.SCRIPTS:
        p = payload.path(name)
        assert p.is_absolute() and p.is_file() and p.name == name
        assert p.parent == Path(payload.__file__).resolve().parent


def test_path_rejects_unknown_names_and_lists_the_valid_ones():
    with pytest.raises(payload.UnknownPayloadError) as info:
        payload.path("../errors.py")
    assert isinstance(info.value, HpcWidgetsError) and isinstance(info.value, LookupError)
    assert "train.py" in str(info.value) and "ddp_train.py" in str(info.value)


@pytest.mark.parametrize("name", payload.SCRIPTS)
def test_scripts_are_standalone_python310(name):
    source = payload.path(name).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 10))  # a SyntaxError here means a newer-Python feature
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name} uses a relative import; payload scripts run as plain files"
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= ALLOWED_THIRD_PARTY, f"{name} imports {sorted(third_party - ALLOWED_THIRD_PARTY)}"
    assert "hpcwidgets" not in imported


def test_shared_code_is_identical_in_both_scripts():
    def functions(name: str) -> dict[str, str]:
        source = payload.path(name).read_text(encoding="utf-8")
        return {node.name: ast.dump(node) for node in ast.parse(source).body  # decorators included
                if isinstance(node, (ast.FunctionDef, ast.ClassDef))}

    single, ddp = functions("train.py"), functions("ddp_train.py")
    shared = set(single) & set(ddp)
    assert {"load_data", "check_arrays", "build_model", "train_epoch", "accuracy", "configure_threads",
            "write_json_atomic", "epoch_line"} <= shared
    drifted = sorted(n for n in shared if single[n] != ddp[n] and n not in {"build_parser", "run", "main"})
    assert not drifted, f"train.py and ddp_train.py differ in {drifted}; keep the copies identical"


# --------------------------------------------------------------------------- train.py


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    """train.py twice with one seed and once with another --lr (2 epochs each)."""
    need(HAVE_ML, "torch, numpy and scikit-learn are needed to run the payload (pip install 'hpcwidgets[ml]')")
    base = tmp_path_factory.mktemp("train")
    script = str(payload.path("train.py"))
    runs = {}
    for label, extra in {"a": [], "b": [], "lr": ["--lr", "0.01"]}.items():
        out = base / label
        stdout = ok(run_script([script, "--epochs", "2", "--seed", "3", "--output-dir", str(out), *extra], base))
        runs[label] = (stdout, json.loads((out / "metrics.json").read_text()), out)
    return runs


def test_train_logs_each_epoch_and_the_loss_falls(train_runs):
    stdout, metrics, _ = train_runs["a"]
    logged = epochs_logged(stdout)
    assert [e for e, _ in logged] == [1, 2]
    assert logged[1][1] < logged[0][1]
    assert [round(x, 4) for x in metrics["losses"]] == [loss for _, loss in logged]
    assert metrics["val_acc"] > 0.8  # digits are easy: 2 epochs already classify most of them


def test_train_writes_complete_metrics_atomically(train_runs):
    _, metrics, out = train_runs["a"]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]  # no temporary file left behind
    assert metrics["lr"] == 0.05 and metrics["epochs"] == 2 and metrics["seed"] == 3
    assert metrics["final_loss"] == metrics["losses"][-1] and len(metrics["losses"]) == 2
    assert len(metrics["val_accs"]) == 2 and metrics["val_acc"] == metrics["val_accs"][-1]
    assert metrics["n_train"] + metrics["n_val"] == 1797 and metrics["device"] == "cpu"


def test_train_same_seed_gives_the_same_losses(train_runs):
    assert train_runs["a"][1]["losses"] == train_runs["b"][1]["losses"]
    assert train_runs["a"][1]["val_accs"] == train_runs["b"][1]["val_accs"]


def test_train_other_lr_gives_other_losses(train_runs):
    assert train_runs["lr"][1]["lr"] == 0.01
    assert train_runs["lr"][1]["losses"] != train_runs["a"][1]["losses"]


def test_train_reads_an_npz_data_dir(ml, tmp_path, torch_threads, capsys):
    import numpy as np

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 40)
    X = rng.normal(size=(120, 5)) + y[:, None] * 3.0  # three well separated blobs
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "blobs.npz", X=X, y=y)
    train = load_module("train.py")
    assert train.main(["--epochs", "3", "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "o"),
                       "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] == 120 and metrics["n_val"] == 24
    assert metrics["data"].endswith("blobs.npz") and metrics["val_acc"] > 0.9
    assert len(epochs_logged(capsys.readouterr().out)) == 3


@pytest.mark.parametrize("arrays,fragment", [
    ({"features": [[1.0], [2.0]], "y": [0, 1]}, "needs X (features) and y (labels)"),
    ({"X": [1.0, 2.0, 3.0], "y": [0, 1, 1]}, "must be 2-D"),
    ({"X": [[1.0], [2.0], [3.0]], "y": [0, 1]}, "one label per sample"),
    ({"X": [[1.0], [2.0], [3.0]], "y": [0.5, 1, 1]}, "map your labels to integers"),
])
def test_train_explains_bad_data(ml, tmp_path, torch_threads, capsys, arrays, fragment):
    import numpy as np

    np.savez(tmp_path / "data.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    train = load_module("train.py")
    assert train.main(["--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and fragment in err
    assert not (tmp_path / "o").exists()


def test_train_missing_data_dir_names_the_fix(ml, tmp_path, torch_threads, capsys):
    train = load_module("train.py")
    assert train.main(["--data-dir", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "does not exist; bind or copy the data" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_refused_with_a_fix(ml, tmp_path, torch_threads, capsys):
    import torch

    need(not torch.cuda.is_available(), "this host has a CUDA GPU, so --device cuda is valid here")
    train = load_module("train.py")
    assert train.main(["--device", "cuda", "--output-dir", str(tmp_path)]) == 2
    assert "--device cpu" in capsys.readouterr().err


def test_bad_arguments_exit_with_usage(ml, torch_threads, capsys):
    train = load_module("train.py")
    with pytest.raises(SystemExit) as info:
        train.main(["--epochs", "0"])
    assert info.value.code == 2 and "at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--lr", "-1"])
    assert "greater than 0" in capsys.readouterr().err


def test_omp_num_threads_is_respected_and_checked(ml, torch_threads, monkeypatch):
    import torch

    train = load_module("train.py")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert train.configure_threads(4) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(train.PayloadError, match="OMP_NUM_THREADS=1"):
        train.configure_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert train.configure_threads(train.available_cpus()) == 1  # the node's CPUs shared among its processes


# --------------------------------------------------------------------------- ddp_train.py


def test_ddp_under_torchrun_with_two_cpu_processes(ml, tmp_path):
    out = tmp_path / "out"
    stdout = ok(run_script(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                            str(payload.path("ddp_train.py")), "--epochs", "2", "--device", "cpu",
                            "--output-dir", str(out)], tmp_path))
    ranks = RANK_LINE.findall(stdout)
    assert sorted((r, w, lr, b) for r, w, lr, _, b in ranks) == [("0", "2", "0", "gloo"), ("1", "2", "1", "gloo")]
    assert [e for e, _ in epochs_logged(stdout)] == [1, 2]  # only rank 0 reports epochs
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo" and metrics["losses"][1] < metrics["losses"][0]


def test_ddp_resumes_from_the_latest_checkpoint(ml, tmp_path, train_runs):
    script = str(payload.path("ddp_train.py"))
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    common = ["--seed", "3", "--device", "cpu", "--output-dir", str(out), "--checkpoint-dir", str(ckpt)]

    first = ok(run_script([script, "--epochs", "2", *common], tmp_path))
    assert RANK_LINE.search(first).groups()[:3] == ("0", "1", "0")  # no torchrun: one process
    assert "resumed" not in first and [e for e, _ in epochs_logged(first)] == [1, 2]
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-0001.pt", "epoch-0002.pt"]

    second = ok(run_script([script, "--epochs", "3", *common], tmp_path))
    assert "resumed from epoch 2" in second
    assert [e for e, _ in epochs_logged(second)] == [3]
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-0002.pt", "epoch-0003.pt"]  # older ones pruned
    resumed = json.loads((out / "metrics.json").read_text())
    assert len(resumed["losses"]) == 3 and resumed["resumed_from_epoch"] == 2

    fresh_out = tmp_path / "fresh"
    ok(run_script([script, "--epochs", "3", "--seed", "3", "--device", "cpu", "--output-dir", str(fresh_out)],
                  tmp_path))
    fresh = json.loads((fresh_out / "metrics.json").read_text())
    assert resumed["losses"] == pytest.approx(fresh["losses"], rel=1e-9, abs=1e-12)  # resuming changes nothing
    # one DDP process follows the same curve as train.py with the same seed
    assert fresh["losses"][:2] == pytest.approx(train_runs["a"][1]["losses"], rel=1e-9, abs=1e-12)


def test_ddp_refuses_a_checkpoint_for_other_data(ml, tmp_path, torch_threads, monkeypatch, capsys):
    import numpy as np

    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    ddp = load_module("ddp_train.py")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", X=rng.normal(size=(30, 4)), y=rng.integers(0, 2, 30))
    np.savez(tmp_path / "b.npz", X=rng.normal(size=(30, 6)), y=rng.integers(0, 2, 30))
    common = ["--epochs", "1", "--device", "cpu", "--checkpoint-dir", str(tmp_path / "ck"),
              "--output-dir", str(tmp_path / "o")]
    assert ddp.main(["--data-dir", str(tmp_path / "a.npz"), *common]) == 0
    assert ddp.main(["--data-dir", str(tmp_path / "b.npz"), *common]) == 2
    err = capsys.readouterr().err
    assert "epoch-0001.pt" in err and "empty --checkpoint-dir" in err


@pytest.mark.parametrize("env,fragment", [
    ({"WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK is not set although WORLD_SIZE is"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "0 <= RANK < WORLD_SIZE"),
    ({"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"}, "WORLD_SIZE='two' is not a whole number"),
])
def test_ddp_environment_errors_name_the_fix(ml, monkeypatch, env, fragment):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ddp = load_module("ddp_train.py")
    with pytest.raises(ddp.PayloadError) as info:
        ddp.read_dist_env()
    assert fragment in str(info.value)


def test_ddp_reads_torchrun_environment(ml, monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    ddp = load_module("ddp_train.py")
    assert ddp.read_dist_env() == ddp.DistEnv(0, 1, 0, 1, launched=False)
    for key, value in {"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(key, value)
    assert ddp.read_dist_env() == ddp.DistEnv(5, 8, 1, 4, launched=True)
