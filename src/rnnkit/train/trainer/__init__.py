"""The training loop: truncated BPTT over a task's batches, with evaluation, checkpoints and logs.

``Trainer(task, config).fit()`` trains; ``Trainer(task, config, resume=RUN_DIR).fit()`` continues a
run exactly where its last checkpoint left it (model, optimizer, schedule, RNG states, epoch, batch
index, carried hidden state): on the CPU the per-step losses equal those of an uninterrupted run,
bit for bit. The trainer talks to the task only through ``TrainableTask``.

One step (Williams & Peng 1990's truncated BPTT, as in Zaremba et al. 2014 and PyTorch's
``word_language_model``): set the scheduled learning rate, ``loss, state, n = task.loss(model,
batch, state)``, backward, clip the global gradient norm (Pascanu et al. 2013), optimizer step, and
detach the carried state so the next window does not backpropagate into this one. The state is reset
to ``task.initial_state`` at the start of every epoch.

Signals: the first SIGINT (Ctrl-C), SIGTERM or SIGHUP lets the current step (and any evaluation or
checkpoint due after it) finish, writes a checkpoint, then ``fit`` raises ``RunInterrupted`` (a
``KeyboardInterrupt``); ``resume`` continues exactly from there. A second signal quits at once (the
last checkpoint stays the resume point). Besides ``checkpoint_every``, a checkpoint is written once
``checkpoint_minutes`` of wall time have passed since the last one.

Non-finite values: every step checks the loss (and the gradient norm when clipping) on the host
before the update; ``on_nonfinite`` says whether that stops the run (``DivergenceError``, naming the
step and the last good checkpoint), skips the batch, or reloads the last checkpoint with a lower
learning rate. No checkpoint is ever written with non-finite weights, and a non-finite validation
loss is never the best. A training loss far above its lowest logs one warning.

One writer per run: the trainer holds ``RUN_DIR/run.lock`` (see ``train/lock.py``) from its construction
to the end of ``fit`` (or ``close()``).

The package: :mod:`.core` (``Trainer``: set-up, resume, ``fit``), :mod:`.loop` (epochs and
steps, what is due after each), :mod:`.tracking` (records, evaluation, the best loss, the summary),
:mod:`.saving` (checkpoints: position, RNG, optimizer), :mod:`.guards` (non-finite values) and
:mod:`.rundir` (which run directory, and whether it may be written).
"""

from __future__ import annotations

from .core import Trainer
from .rundir import check_run_dir, run_of
from .saving import POSITION_KEYS

__all__ = ["POSITION_KEYS", "Trainer", "check_run_dir", "run_of"]
