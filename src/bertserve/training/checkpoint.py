"""Training checkpoints, so that `bertserve train --output RUN --resume` continues an interrupted run.

    RUN_DIR/checkpoint/
      model.safetensors + config.json   weights at the last checkpoint (Hugging Face layout)
      training_state.pt                 optimizer, LR schedule and torch RNG state (tensors and numbers
                                        only; read back with torch.load(weights_only=True))
      progress.json                     epoch, batches done in it, step, best dev score so far, the
                                        shuffling RNG's state at the start of the epoch, partial losses

A checkpoint is written to a temporary folder and swapped in with renames
(`bertserve.files.write_folder_atomically`), so a crash (even kill -9) at any moment leaves either
the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bertserve.errors import RunFolderError
from bertserve.files import recover_interrupted_swap as recover_folder, write_folder_atomically
from bertserve.layout import CHECKPOINT_DIR, PROGRESS_FILE



@dataclass
class Progress:
    epoch: int = 1  # the epoch in progress (1-based)
    batches_done: int = 0  # batches of that epoch already trained
    step: int = 0  # optimizer steps so far, all epochs
    best_accuracy: float = -1.0
    best_epoch: int = 0
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0  # time spent in the current epoch before the checkpoint
    epoch_losses: list[float] = field(default_factory=list)
    epoch_seen: int = 0
    epoch_rng_state: list | None = None  # random.Random state at the start of the epoch (batch order)


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, progress: Progress) -> None:
    with write_folder_atomically(run_dir / CHECKPOINT_DIR, replace=True) as temporary:
        model.save_pretrained(str(temporary), safe_serialization=True)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state()}, temporary / "training_state.pt")
        (temporary / PROGRESS_FILE).write_text(json.dumps(asdict(progress)), encoding="utf-8")


def recover_interrupted_swap(run_dir: Path, name: str) -> None:
    """Undo a crash in the middle of replacing `run_dir/name` (see `bertserve.files.recover_interrupted_swap`)."""
    recover_folder(Path(run_dir) / name)


def load_checkpoint(run_dir: Path) -> tuple[Path, dict, Progress]:
    """(weights folder, training state, progress) of the last checkpoint of `run_dir`."""
    recover_interrupted_swap(run_dir, CHECKPOINT_DIR)
    folder = run_dir / CHECKPOINT_DIR
    if not (folder / PROGRESS_FILE).is_file():
        raise RunFolderError(f"{run_dir}: no checkpoint to resume from (expected {folder}/progress.json)")
    state = torch.load(folder / "training_state.pt", weights_only=True)
    progress = Progress(**json.loads((folder / PROGRESS_FILE).read_text(encoding="utf-8")))
    return folder, state, progress


def restore_checkpoint(run_dir: Path, model, optimizer, scheduler, device: torch.device) -> Progress:
    """Load the last checkpoint of `run_dir` into `model`, `optimizer`, `scheduler` and torch's RNG;
    return where training stood."""
    from safetensors.torch import load_file

    from bertserve.layout import WEIGHTS_FILE

    weights, state, progress = load_checkpoint(run_dir)
    model.load_state_dict(load_file(weights / WEIGHTS_FILE, device=str(device)))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return progress
