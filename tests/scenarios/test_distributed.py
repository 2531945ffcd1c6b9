"""Multi-process training: `torchrun --nproc_per_node 2 -m bertserve train` (DDP, gloo on CPU) gives
the same model as one process on the same data, and only rank 0 writes the run folder."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from conftest import make_tiny_pretrained

SETTINGS = ["--epochs", "2", "--batch-size", "8", "--learning-rate", "5e-3", "--max-seq-length", "32",
            "--warmup-ratio", "0", "--precision", "fp32", "--seed", "5", "--threads", "1", "--checkpoint-every-steps", "0"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one(tmp_path, small_data):
    from safetensors.numpy import load_file

    # Without dropout the two runs see exactly the same arithmetic, up to summation order.
    pretrained = make_tiny_pretrained(tmp_path / "pretrained", dropout=0.0)
    common = ["--data", str(small_data), "--pretrained", str(pretrained), *SETTINGS]
    single = subprocess.run([sys.executable, "-m", "bertserve", "train", *common, "--output", str(tmp_path / "single")],
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    distributed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
         "-m", "bertserve", "train", *common, "--output", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=600)
    assert distributed.returncode == 0, distributed.stderr[-3000:]
    # Only rank 0 reports and writes.
    assert len([line for line in distributed.stdout.splitlines() if line.startswith("{")]) == 1
    assert json.loads((tmp_path / "ddp" / "environment.json").read_text())["world_size"] == 2

    one = load_file(tmp_path / "single" / "model" / "model.safetensors")
    two = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    assert one.keys() == two.keys()
    worst = max(float(abs(one[key] - two[key]).max()) for key in one)
    assert worst < 1e-4, f"largest weight difference {worst}"
    history_one = [json.loads(line) for line in (tmp_path / "single" / "history.jsonl").read_text().splitlines()]
    history_two = [json.loads(line) for line in (tmp_path / "ddp" / "history.jsonl").read_text().splitlines()]
    assert [r["dev_accuracy"] for r in history_one] == [r["dev_accuracy"] for r in history_two]
    assert history_two[-1]["train_loss"] == pytest.approx(history_one[-1]["train_loss"], abs=0.05)  # rank 0's shard only
