"""The progress board training processes post to, and the driver's relay of it."""

from __future__ import annotations

import ray

from training.progress import ProgressBoard, State, follow_task, read_board, relay, settle


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


@ray.remote
def post_fire_and_forget_then_settle(board: ray.actor.ActorHandle) -> None:
    board.post.remote("embed", 0.0)
    board.post.remote("embed", 1.0)
    settle(board)


def test_a_settled_task_leaves_its_last_post_on_the_board_before_it_returns(
    ray_local: None,
) -> None:
    # Posts are fire-and-forget: without `settle`, the driver's read right after the task
    # returned missed them about half the time on a fresh board (CI once saw ("queued", 0.0)
    # after an embedding run). Twenty fresh boards make that a sure failure.
    for _ in range(20):
        board = ProgressBoard.remote()
        ray.get(post_fire_and_forget_then_settle.remote(board))
        assert ray.get(board.read.remote()) == ("embed", 1.0)
        ray.kill(board)
