"""Data safety in training: kill -9 mid-epoch leaves a good checkpoint, and --resume finishes the
run with the same result as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bertserve.training.config import build_config
from bertserve.training.loop import train

SETTINGS = dict(epochs=3, batch_size=4, learning_rate=5e-3, max_seq_length=32, warmup_ratio=0.0,
                precision="fp32", seed=3, threads=1, checkpoint_every_steps=2)


def flags_for(data, pretrained, output):
    return {"data": str(data), "pretrained": str(pretrained), "output": str(output), **SETTINGS}


def cli_args(flags):
    args = []
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def test_kill_9_mid_epoch_then_resume_matches_uninterrupted(tmp_path, small_data, tiny_pretrained):
    reference = train(build_config(flags=flags_for(small_data, tiny_pretrained, tmp_path / "reference"), environ={}))

    output = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "bertserve", "train", *cli_args(flags_for(small_data, tiny_pretrained, output))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress_file = output / "checkpoint" / "progress.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # wait until a mid-epoch checkpoint of epoch 2 exists, then kill
            if progress_file.is_file():
                try:
                    progress = json.loads(progress_file.read_text())
                except (json.JSONDecodeError, OSError):
                    progress = {}
                if progress.get("epoch") == 2 and progress.get("batches_done", 0) >= 2:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("no mid-epoch checkpoint appeared")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)

    # What kill -9 left: a complete checkpoint, and no finished-run files.
    checkpoint = output / "checkpoint"
    assert {"model.safetensors", "config.json", "training_state.pt", "progress.json"} <= {p.name for p in checkpoint.iterdir()}
    assert not (output / "metrics.json").exists()

    result = subprocess.run([sys.executable, "-m", "bertserve", "train", "--output", str(output), "--resume"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["test"]["accuracy"] == pytest.approx(reference["test"]["accuracy"])

    history = [json.loads(line) for line in (output / "history.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "reference" / "history.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    for resumed, uninterrupted in zip(history, expected):
        assert resumed["loss_curve"] == pytest.approx(uninterrupted["loss_curve"], abs=1e-5)
        assert resumed["dev_accuracy"] == uninterrupted["dev_accuracy"]
    assert not checkpoint.exists()  # a finished run keeps its best weights in model/ only


def test_resume_needs_a_checkpoint_and_no_other_flags(tmp_path, small_data, tiny_pretrained):
    result = subprocess.run([sys.executable, "-m", "bertserve", "train", "--output", str(tmp_path / "none"), "--resume"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is not a run folder" in result.stderr
    result = subprocess.run([sys.executable, "-m", "bertserve", "train", "--output", str(tmp_path), "--resume", "--epochs", "5"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "drop ['epochs']" in result.stderr
