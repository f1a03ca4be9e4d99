"""Train a small MLP on handwritten digits in one process (a payload script shipped by hpcwidgets).

Run it as a plain script, on a laptop, on a cluster node or inside a container::

    python train.py --epochs 10 --lr 0.05 --output-dir ./output

It needs only PyTorch, NumPy and scikit-learn. The data is scikit-learn's bundled 8x8 digits
(1797 images, no download); ``--data-dir`` reads your own ``.npz`` file with arrays ``X``
(samples x features) and ``y`` (integer class labels) instead. A fixed 80/20 train/validation
split is drawn with its own seed, so every run validates on the same images; features are
standardised with the training part's mean and standard deviation.

Each epoch prints one line::

    epoch=1 loss=0.8123 val_acc=0.9056 samples_per_sec=41234.5

and the end of the run writes ``metrics.json`` into ``--output-dir`` (replaced atomically, so a
reader never sees half a file). The same ``--seed`` gives the same losses. The training order of
each epoch is the one ``DistributedSampler`` gives a single process, so ``ddp_train.py`` run as one
process follows the same loss curve as this script.

The number of CPU threads is ``OMP_NUM_THREADS`` when set, otherwise the CPUs this process may
run on (which respects a Slurm allocation's CPU binding).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SPLIT_SEED = 0  # the train/validation split does not change with --seed
VAL_FRACTION = 0.2
HIDDEN = 128


def say(text, file=None, flush=True):
    """Write one whole line with a single write().

    Ranks sharing a log (torchrun's workers, srun's tasks) must never split each other's lines;
    print() writes the text and the newline separately, which unbuffered output makes visible.
    """
    stream = sys.stdout if file is None else file
    stream.write(f"{text}\n")
    if flush:
        stream.flush()


class PayloadError(Exception):
    """A problem with the arguments, the environment or the data; the message names the fix."""


# --------------------------------------------------------------------------- arguments


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give e.g. 10") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small; give a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give e.g. 0.05") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number greater than 0, e.g. 0.05")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train a small MLP on scikit-learn's digits (or your .npz) in one process.")
    parser.add_argument("--epochs", type=_positive_int, default=10, help="passes over the training data (default 10)")
    parser.add_argument("--lr", type=_positive_float, default=0.05, help="SGD learning rate (default 0.05)")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="samples per step (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for initial weights and shuffling (default 0)")
    parser.add_argument("--output-dir", type=Path, default=Path("output"),
                        help="where metrics.json is written (default ./output)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto uses a GPU when PyTorch sees one (default auto)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="a .npz file with arrays X and y, or a directory holding data.npz "
                             "(or exactly one .npz); default: scikit-learn's bundled digits")
    return parser


# --------------------------------------------------------------------------- environment


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset / Slurm CPU binding where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def configure_threads(processes_on_node: int = 1) -> int:
    """Set PyTorch's intra-op threads from OMP_NUM_THREADS, else share this node's CPUs; return the count."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if text:
        try:
            threads = int(text)
        except ValueError:
            threads = 0
        if threads < 1:
            raise PayloadError(f"OMP_NUM_THREADS={text!r} is not a positive whole number; set it to the "
                               "number of CPU cores each process may use, e.g. OMP_NUM_THREADS=1")
    else:
        threads = max(1, available_cpus() // max(1, processes_on_node))
    torch.set_num_threads(threads)
    return threads


def resolve_device(choice: str) -> torch.device:
    """Map --device auto|cpu|cuda to a torch.device; cuda without a visible GPU is an error."""
    if choice == "cpu":
        return torch.device("cpu")
    has_gpu = torch.cuda.is_available()
    if choice == "cuda" and not has_gpu:
        raise PayloadError("--device cuda was requested but PyTorch sees no CUDA GPU "
                           "(torch.cuda.is_available() is False); run on a GPU node and pass the GPU into "
                           "the container (e.g. apptainer --nv), or use --device cpu or --device auto")
    return torch.device("cuda") if has_gpu else torch.device("cpu")


# --------------------------------------------------------------------------- data


def find_npz(data_dir: Path) -> Path:
    """The .npz file that --data-dir names: the file itself, DIR/data.npz, or DIR's only .npz."""
    if data_dir.is_file():
        return data_dir
    if not data_dir.exists():
        raise PayloadError(f"--data-dir {data_dir} does not exist; bind or copy the data into the container, "
                           "or leave --data-dir out to use the bundled digits data")
    preferred = data_dir / "data.npz"
    if preferred.is_file():
        return preferred
    found = sorted(p for p in data_dir.glob("*.npz") if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise PayloadError(f"no .npz file in {data_dir}; save one with numpy.savez(path, X=features, y=labels)")
    names = ", ".join(p.name for p in found)
    raise PayloadError(f"{data_dir} holds several .npz files ({names}); pass one of them as --data-dir "
                       "or name the one to use data.npz")


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays X and y from a .npz file, checked for shape and label type."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise PayloadError(f"{path} has arrays {archive.files} but needs X (features) and y (labels); "
                                   "write it with numpy.savez(path, X=features, y=labels)")
            X, y = archive["X"], archive["y"]
    except (OSError, ValueError) as exc:
        raise PayloadError(f"cannot read {path} as a .npz file ({exc}); "
                           "write it with numpy.savez(path, X=features, y=labels)") from exc
    return X, y


def check_arrays(X: np.ndarray, y: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate features and labels; return float32 features and int64 labels."""
    if X.ndim != 2:
        raise PayloadError(f"X in {source} has shape {X.shape}; it must be 2-D (samples x features), "
                           "e.g. X.reshape(len(X), -1)")
    if y.ndim != 1 or len(y) != len(X):
        raise PayloadError(f"y in {source} has shape {y.shape} but X has {len(X)} samples; "
                           "y must be 1-D with one label per sample")
    if len(X) < 2:
        raise PayloadError(f"{source} has {len(X)} sample(s); training and validation need at least 2")
    if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X).all():
        raise PayloadError(f"X in {source} must hold finite numbers (dtype {X.dtype}); remove NaN/inf values")
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.equal(np.mod(y, 1), 0)) or (y < 0).any():
        raise PayloadError(f"y in {source} must hold class numbers 0, 1, 2, …; map your labels to integers first")
    return X.astype(np.float32), y.astype(np.int64)


def load_data(data_dir: Path | None) -> dict:
    """Load, split (fixed seed) and standardise the data; return numpy arrays and sizes."""
    if data_dir is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        X, y = check_arrays(digits.data, digits.target, "scikit-learn digits")
        source = "sklearn digits"
    else:
        path = find_npz(data_dir)
        X, y = check_arrays(*read_npz(path), str(path))
        source = str(path)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(X))
    n_val = min(len(X) - 1, max(1, round(len(X) * VAL_FRACTION)))
    val, train = order[:n_val], order[n_val:]
    mean = X[train].mean(axis=0)
    std = X[train].std(axis=0)
    std[std == 0] = 1.0  # constant features (e.g. the digits' blank border pixels) stay at zero
    scale = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return {
        "X_train": scale(X[train]), "y_train": y[train], "X_val": scale(X[val]), "y_val": y[val],
        "n_features": X.shape[1], "n_classes": int(y.max()) + 1, "source": source,
    }


# --------------------------------------------------------------------------- model and steps


def build_model(n_features: int, n_classes: int, seed: int) -> nn.Module:
    """The MLP n_features → 128 → n_classes, initialised from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_classes))


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of epoch ``epoch`` (0-based): what DistributedSampler gives one process."""
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor,
                order: torch.Tensor, batch_size: int) -> tuple[float, int]:
    """One pass over ``X[order]`` in batches; return (sum of per-sample losses, samples seen)."""
    model.train()
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(X[index]), y[index])
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * len(index)
    return float(total.item()), len(order)


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(X).argmax(dim=1) == y).double().mean().item())


def epoch_line(epoch: int, loss: float, val_acc: float, samples_per_sec: float) -> str:
    return f"epoch={epoch} loss={loss:.4f} val_acc={val_acc:.4f} samples_per_sec={samples_per_sec:.1f}"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON through a temporary file in the same directory and os.replace it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict:
    threads = configure_threads()
    device = resolve_device(args.device)
    data = load_data(args.data_dir)
    X_train = torch.from_numpy(data["X_train"]).to(device)
    y_train = torch.from_numpy(data["y_train"]).to(device)
    X_val = torch.from_numpy(data["X_val"]).to(device)
    y_val = torch.from_numpy(data["y_val"]).to(device)
    say(f"device={device} threads={threads} data={data['source']} n_train={len(X_train)} "
          f"n_val={len(X_val)} batch_size={args.batch_size}", flush=True)

    model = build_model(data["n_features"], data["n_classes"], args.seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    losses: list[float] = []
    val_accs: list[float] = []
    rates: list[float] = []
    for epoch in range(args.epochs):
        order = epoch_order(len(X_train), args.seed, epoch).to(device)
        started = time.perf_counter()
        loss_sum, seen = train_epoch(model, optimizer, X_train, y_train, order, args.batch_size)
        elapsed = max(time.perf_counter() - started, 1e-9)
        losses.append(loss_sum / seen)
        rates.append(seen / elapsed)
        val_accs.append(accuracy(model, X_val, y_val))
        say(epoch_line(epoch + 1, losses[-1], val_accs[-1], rates[-1]), flush=True)

    metrics = {
        "script": "train.py", "lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
        "seed": args.seed, "device": str(device), "world_size": 1, "threads": threads,
        "data": data["source"], "n_train": len(X_train), "n_val": len(X_val),
        "final_loss": losses[-1], "val_acc": val_accs[-1],
        "losses": losses, "val_accs": val_accs, "samples_per_sec": rates,
    }
    target = args.output_dir / "metrics.json"
    write_json_atomic(target, metrics)
    say(f"wrote {target}", flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except PayloadError as exc:
        say(f"train.py: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
