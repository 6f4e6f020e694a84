"""Running a worker's units in the test's own thread: what a worker thread does per token, until idle."""

from __future__ import annotations

from worker.runtime import Runtime
from worker.units_runner import run_token


def run_until_idle(rt: Runtime, *, limit: int = 500) -> list[str]:
    """Take and run units one after another until none is ready; what each run ended with, in order."""
    outcomes: list[str] = []
    for _ in range(limit):
        outcome = run_token(rt)
        if outcome == "idle":
            return outcomes
        outcomes.append(outcome)
    raise AssertionError(f"still busy after {limit} units: {outcomes[-5:]}")
