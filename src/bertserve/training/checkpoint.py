"""Training checkpoints, so that `bertserve train --output RUN --resume` continues an interrupted run.

    RUN_DIR/checkpoint/
      model.safetensors + config.json   weights at the last checkpoint (Hugging Face layout)
      training_state.pt                 optimizer, LR schedule and torch RNG state (tensors and numbers
                                        only; read back with torch.load(weights_only=True))
      progress.json                     epoch, batches done in it, step, best dev score so far, the
                                        shuffling RNG's state at the start of the epoch, partial losses

A checkpoint is written to `checkpoint.tmp/` and swapped in with renames, so a crash (even kill -9)
at any moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bertserve.errors import RunFolderError
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


def swap_folder_in(temporary: Path, final: Path) -> None:
    """Replace `final` by `temporary` with renames only; the old copy is removed last."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    temporary.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, progress: Progress) -> None:
    temporary = run_dir / (CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(str(temporary), safe_serialization=True)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, temporary / "training_state.pt")
    (temporary / PROGRESS_FILE).write_text(json.dumps(asdict(progress)), encoding="utf-8")
    _fsync_folder(temporary)
    swap_folder_in(temporary, run_dir / CHECKPOINT_DIR)


def recover_interrupted_swap(run_dir: Path, name: str) -> None:
    """A crash between the two renames of `swap_folder_in` leaves only `<name>.old`: put it back."""
    final, old = run_dir / name, run_dir / (name + ".old")
    if not final.exists() and old.exists():
        old.rename(final)
    shutil.rmtree(run_dir / (name + ".tmp"), ignore_errors=True)


def load_checkpoint(run_dir: Path) -> tuple[Path, dict, Progress]:
    """(weights folder, training state, progress) of the last checkpoint of `run_dir`."""
    recover_interrupted_swap(run_dir, CHECKPOINT_DIR)
    folder = run_dir / CHECKPOINT_DIR
    if not (folder / PROGRESS_FILE).is_file():
        raise RunFolderError(f"{run_dir}: no checkpoint to resume from (expected {folder}/progress.json)")
    state = torch.load(folder / "training_state.pt", weights_only=True)
    progress = Progress(**json.loads((folder / PROGRESS_FILE).read_text(encoding="utf-8")))
    return folder, state, progress
