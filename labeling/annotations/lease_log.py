"""The lease log (``LeaseLog``): every lease handed out, and when it ended."""

from __future__ import annotations

from django.db import connection

# A skipped image is not served to the one who skipped it again for this long (8 hours: a
# working day, so a skip sticks for the session). Without it the queue hands the best-ranked
# image straight back after a skip, and the skip loops (issue 28: 9 releases of one image over
# 30 labels). Everyone else gets the image at once.
SKIP_HOLD_SECONDS = 8 * 3600

# The queue's condition (image alias ``i``, parameter ``user``): not skipped by the user lately.
NOT_SKIPPED_SQL = f"""
    AND NOT EXISTS (
        SELECT 1 FROM annotations_leaselog s
        WHERE s.user_id = %(user)s AND s.image_id = i.id AND s.skipped
          AND s.ended_at > now() - make_interval(secs => {SKIP_HOLD_SECONDS})
    )
"""


def lease_log_end(*, image_id: int, user_ids: list[int], skipped: bool = False) -> None:
    """End the open lease log rows of ``image_id`` held by ``user_ids``; ``skipped``: the
    lease ended by a skip (the queue holds the image back from them, ``NOT_SKIPPED_SQL``)."""
    # clock_timestamp(), not now(): now() is when the transaction began, which can be earlier
    # than the moment the lease really ended (or began), and the log must be exact.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE annotations_leaselog SET ended_at = clock_timestamp(), skipped = %s "
            "WHERE image_id = %s AND user_id = ANY(%s) AND ended_at IS NULL",
            [skipped, image_id, user_ids],
        )
