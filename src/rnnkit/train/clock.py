"""Wall-clock bookkeeping of a run: elapsed time over resumed sessions, time spent outside
training steps (evaluation, checkpoints), and the time budget's stop rule."""

from __future__ import annotations

import time


class RunClock:
    """Times one ``fit`` session; ``elapsed_before`` carries earlier sessions of a resumed run.

    Stop rule for a ``budget`` (seconds): stop after a step when
    ``elapsed + seconds_per_step + final_eval_seconds >= budget``, i.e. when the next step would
    overrun the budget once room is kept for the final evaluation (estimated by the trainer from the
    evaluations so far). ``seconds_per_step`` is this session's wall time over its steps, so the
    time of periodic evaluations and checkpoints is spread over the steps.
    """

    def __init__(self, budget: float | None = None, elapsed_before: float = 0.0) -> None:
        self.budget = budget
        self.elapsed_before = float(elapsed_before)
        self.start = self.now()
        self.steps = 0
        self.paused = 0.0  # seconds spent outside training steps this session
        self.final_eval_seconds = 0.0

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def elapsed(self) -> float:
        """Seconds of the whole run so far (all sessions)."""
        return self.elapsed_before + (self.now() - self.start)

    def seconds_per_step(self) -> float:
        return (self.now() - self.start) / max(self.steps, 1)

    def out_of_time(self) -> bool:
        if self.budget is None:
            return False
        return self.elapsed() + self.seconds_per_step() + self.final_eval_seconds >= self.budget

    def steps_left(self) -> int:
        """Estimated steps that still fit in the budget (0 without a budget)."""
        if self.budget is None:
            return 0
        room = self.budget - self.elapsed() - self.final_eval_seconds
        return int(max(room, 0.0) / max(self.seconds_per_step(), 1e-12))
