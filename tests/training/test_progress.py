"""The progress board training processes post to, and the driver's relay of it."""

from __future__ import annotations

import ray

from training.progress import ProgressBoard, State, follow_task, read_board, relay


def test_a_lost_progress_board_does_not_fail_the_run(ray_local: None) -> None:
    board = ProgressBoard.remote()
    board.post.remote("train", 0.5)
    assert read_board(board, None) == ("train", 0.5)
    ray.kill(board)
    # Its node gone (or the actor killed): the last state seen stands in, training goes on.
    assert read_board(board, ("train", 0.5)) == ("train", 0.5)


def test_the_relay_passes_on_each_new_state_once(ray_local: None) -> None:
    board = ProgressBoard.remote()
    seen: list[State] = []

    def record(stage: str, fraction: float) -> None:
        seen.append((stage, fraction))

    last = relay(board, record, None)
    board.post.remote("train", 0.5)
    last = relay(board, record, last)
    last = relay(board, record, last)
    assert seen == [("queued", 0.0), ("train", 0.5)] and last == ("train", 0.5)
    ray.kill(board)


@ray.remote
def post_then_finish(board: ray.actor.ActorHandle) -> None:
    ray.get(board.post.remote("checkpoint", 1.0))


def test_following_a_task_relays_the_state_it_left_when_it_finished(ray_local: None) -> None:
    board = ProgressBoard.remote()
    seen: list[State] = []
    follow_task(post_then_finish.remote(board), board, lambda s, f: seen.append((s, f)))
    assert seen[-1] == ("checkpoint", 1.0)  # read after the task was done, not before
    ray.kill(board)
