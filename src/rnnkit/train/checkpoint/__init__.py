"""Pickle-free, atomic training checkpoints.

Layout of a run directory::

    RUN_DIR/checkpoints/
      step-000120/             one directory per checkpoint, named by the global step
        model.safetensors      the model's state_dict (tied weights stored once, aliases in
                               the metadata)
        optimizer.safetensors  optimizer state tensors, named by path ("optimizer.state.0.step")
        state.safetensors      per-rank tensors: torch/CUDA RNG states (uint8), carried hidden state
        trainer.json           step, data position, schedule, best metric, configs, task state
                               (and a sha256 of each of its entries), Python/NumPy RNG states, and
                               the structure that rebuilds the optimizer state dict and the
                               per-rank state around the tensors
        manifest.json          sha256 and size of the four files above, written last
      latest.json              {"path": "step-000120", "step": 120}
      best.json                the checkpoint with the best validation loss (kept by pruning)

Writes are atomic: every file goes into a temporary directory beside the final one, is fsynced, and
the directory is renamed into place; only then is ``latest.json`` replaced (temporary file +
``os.replace``). A crash at any point leaves the previous checkpoint and pointer intact; a failed
write (a full disk) raises ``CheckpointWriteError`` saying so.

Loading checks that all files exist, that they match the manifest's checksums (a checkpoint without
a manifest, as written before it existed, loads as unverified), and that keys and shapes match the
model and optimizer, raising ``CheckpointError`` naming the file and the key -- there is no partial
load. Damage (a missing, unreadable or altered file) is a ``CheckpointCorrupt``; resuming a run
(``load_newest_intact``) then falls back to the newest intact checkpoint with a warning. The pointer
files only ever name a ``step-NNNNNN`` folder inside their own ``checkpoints/``.

Nested state (the optimizer's state dict, RNG states, the carried hidden state) is split into JSON
and tensors by ``tree.encode_tree``.

The modules: :mod:`.layout` (file names, formats, errors), :mod:`.write` (saving),
:mod:`.verify` (the manifest, checksums, safetensors and trainer.json), :mod:`.read` (loading, and
the fallback to the newest intact checkpoint), :mod:`.pointers` (``latest.json``/``best.json``,
listing and pruning) and :mod:`.task_state` (the task digest).
"""

from __future__ import annotations

from ..atomic import write_json_atomic
from .layout import (
    FILES,
    FORMAT,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    TASK_DIGEST_KEY,
    TENSOR_FILES,
    VERSION,
    CheckpointCorrupt,
    CheckpointError,
    CheckpointWriteError,
    step_dir_name,
)
from .pointers import (
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    resolve_checkpoint,
    resume_candidates,
)
from .read import LoadedCheckpoint, load_checkpoint, load_model_weights, load_newest_intact
from .task_state import check_task_state, task_digest
from .verify import read_checkpoint_meta, read_manifest, verify_checkpoint
from .write import point_best, save_checkpoint

__all__ = [
    "FILES",
    "FORMAT",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "META_FILE",
    "MODEL_FILE",
    "OPTIMIZER_FILE",
    "STATE_FILE",
    "TASK_DIGEST_KEY",
    "TENSOR_FILES",
    "VERSION",
    "CheckpointCorrupt",
    "CheckpointError",
    "CheckpointWriteError",
    "LoadedCheckpoint",
    "best_checkpoint",
    "check_task_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "load_newest_intact",
    "prune_checkpoints",
    "read_checkpoint_meta",
    "read_manifest",
    "resolve_checkpoint",
    "resume_candidates",
    "point_best",
    "save_checkpoint",
    "step_dir_name",
    "task_digest",
    "verify_checkpoint",
    "write_json_atomic",
]
