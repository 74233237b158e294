"""The lease log (``LeaseLog``): every lease handed out, and when it ended."""

from __future__ import annotations

from django.db import connection


def lease_log_end(*, image_id: int, user_ids: list[int]) -> None:
    # clock_timestamp(), not now(): now() is when the transaction began, which can be earlier
    # than the moment the lease really ended (or began), and the log must be exact.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE annotations_leaselog SET ended_at = clock_timestamp() "
            "WHERE image_id = %s AND user_id = ANY(%s) AND ended_at IS NULL",
            [image_id, user_ids],
        )
