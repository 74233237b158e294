"""Progress from training processes to the driver: a small Ray actor they post to, and the
driver-side loops that relay what it holds to the caller's `progress(stage, fraction)`.

    .venv/bin/python -m pytest tests/training/test_progress.py -p no:django -q
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

Progress = Callable[[str, float], None]
State = tuple[str, float]

RELAY_EVERY_S = 0.5  # seconds between reads of the board: a progress bar needs no more
READ_TIMEOUT_S = 10  # seconds to wait for the board's answer before keeping the last state


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Where training processes post (stage, fraction) and the driver reads it; also how a
    driver's cancel reaches a task (`stop()` here, `stopped()` polled there)."""

    def __init__(self) -> None:
        self.state: State = ("queued", 0.0)
        self.stop_requested = False

    def post(self, stage: str, fraction: float) -> None:
        self.state = (stage, fraction)

    def read(self) -> State:
        return self.state

    def stop(self) -> None:
        self.stop_requested = True

    def stopped(self) -> bool:
        return self.stop_requested


def board_beside_the_driver() -> ray.actor.ActorHandle:
    """The progress board on this (the driver's) node: a zero-CPU actor may otherwise land on
    any node, and the loss of that node would fail a run that Ray Train itself survives."""
    here = ray.get_runtime_context().get_node_id()
    return ProgressBoard.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True)
    ).remote()


def read_board(board: ray.actor.ActorHandle, last: State | None) -> State | None:
    """The board's state; the last one seen if the board cannot answer (its node gone, a
    moment of RPC trouble): progress is for people watching, never a reason to fail a run."""
    try:
        return ray.get(board.read.remote(), timeout=READ_TIMEOUT_S)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return last


def settle(board: ray.actor.ActorHandle) -> None:
    """Wait until `board` has taken every post this process sent. Ray runs one caller's calls
    to an actor in order, so one answered read means the posts before it are in. Call it last
    in a task: posts are fire-and-forget, and the driver's final read after the task returns
    would otherwise race them (and miss the end state). A board that cannot answer is let go."""
    read_board(board, None)


def relay(
    board: ray.actor.ActorHandle, progress: Progress | None, last: State | None
) -> State | None:
    """Pass the board's state to `progress` if it changed since `last`; returns the state
    now last passed on."""
    state = read_board(board, last)
    if progress and state != last:
        progress(*state)
        return state
    return last


def follow_task(
    ref: ray.ObjectRef, board: ray.actor.ActorHandle, progress: Progress | None
) -> None:
    """Relay the board every half second until the task behind `ref` is done, then once more."""
    last = None
    while True:
        ready, _ = ray.wait([ref], timeout=RELAY_EVERY_S)
        last = relay(board, progress, last)
        if ready:
            return


def follow_future(future: Future, board: ray.actor.ActorHandle, progress: Progress | None) -> None:
    """Relay the board every half second while `future` (Ray Train's blocking fit) runs."""
    last = None
    while not future.done():
        last = relay(board, progress, last)
        time.sleep(RELAY_EVERY_S)
