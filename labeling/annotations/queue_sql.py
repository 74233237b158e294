"""The queue's SQL (``services.task_lease_next``): the filter of eligible images, the lease
statement, and the caller's own leases handed back. Plain strings, no Django."""

from __future__ import annotations

from labeling.annotations.lease_log import NOT_SKIPPED_SQL

# The images that still need a label from the user; ``{lease}``: whose lease allows it.
_ELIGIBLE = (
    """
    i.project_id = %(project)s
    AND i.status IN ('unlabeled', 'partial')
    AND {lease}
    AND NOT EXISTS (
        SELECT 1 FROM annotations_annotation a
        WHERE a.image_id = i.id AND a.annotator_id = %(user)s
          AND a.discarded_at IS NULL  -- sent back by a reviewer: they may vote again
    )
"""
    + NOT_SKIPPED_SQL
)
QUEUE_FILTER = _ELIGIBLE.format(lease="(i.lease_expires IS NULL OR i.lease_expires <= now())")
# A grid page may also take back what the user holds already (a page reloaded, a page left
# before its leases were given back): leased again, not stuck until their leases run out.
PAGE_FILTER = _ELIGIBLE.format(
    lease="(i.lease_expires IS NULL OR i.lease_expires <= now() OR i.leased_to_id = %(user)s)"
)

# Lease the k best eligible images. One statement: pick on the partial index, lock what is
# picked (skipping rows another transaction is leasing right now), lease, log.
LEASE_SQL = """
WITH picked AS (
    SELECT i.id FROM images_image i
    WHERE {where} {extra}
    ORDER BY {order}
    LIMIT %(count)s
    FOR UPDATE OF i SKIP LOCKED
), leased AS (
    UPDATE images_image i
    SET leased_to_id = %(user)s,
        lease_expires = now() + make_interval(secs => %(ttl)s),
        lease_exploration = %(exploration)s
    FROM picked WHERE i.id = picked.id
    RETURNING i.id, i.lease_expires, i.priority, i.random_key, i.predicted_label,
              i.original_name
), logged AS (
    INSERT INTO annotations_leaselog (image_id, user_id, leased_at, expires_at, exploration)
    SELECT id, %(user)s, clock_timestamp(), lease_expires, %(exploration)s FROM leased
)
SELECT id, lease_expires, predicted_label, original_name FROM leased ORDER BY {order}
"""

# The caller's own unexpired leases (a second tab, a reload): handed back first, renewed.
MINE_SQL = """
WITH mine AS (
    SELECT i.id FROM images_image i
    WHERE i.leased_to_id = %(user)s AND i.project_id = %(project)s
      AND i.lease_expires > now()
      -- a gold question held is handed back like any task (gold.py)
      AND (i.status IN ('unlabeled', 'partial') OR i.gold_label IS NOT NULL)
    ORDER BY i.priority DESC, i.random_key
    LIMIT %(count)s
    FOR UPDATE OF i SKIP LOCKED
)
, renewed AS (
    UPDATE images_image i
    SET lease_expires = now() + make_interval(secs => %(ttl)s)
    FROM mine WHERE i.id = mine.id
    RETURNING i.id, i.lease_expires, i.lease_exploration, i.predicted_label, i.priority,
              i.random_key, i.original_name
), logged AS (
    -- Only the live lease's log row: an older lease of the same image that simply ran out
    -- also has no ended_at, and stretching it would claim the time a colleague held it.
    UPDATE annotations_leaselog l SET expires_at = r.lease_expires
    FROM renewed r
    WHERE l.image_id = r.id AND l.user_id = %(user)s AND l.ended_at IS NULL
      AND l.expires_at > now()
)
SELECT * FROM renewed
"""

# Lease the given images (a grid page, learning/grid.py), those of them still eligible
# (``PAGE_FILTER``), best ``order`` first, at most ``count``. A lease of the user's own that is
# taken again ends its log row first, so the log never shows one person holding an image twice.
LEASE_IDS_SQL = """
WITH picked AS (
    SELECT i.id FROM images_image i
    WHERE {where} AND i.id = ANY(%(ids)s)
    ORDER BY {order}
    LIMIT %(count)s
    FOR UPDATE OF i SKIP LOCKED
), retaken AS (
    UPDATE annotations_leaselog l SET ended_at = clock_timestamp()
    FROM picked
    WHERE l.image_id = picked.id AND l.user_id = %(user)s AND l.ended_at IS NULL
), leased AS (
    UPDATE images_image i
    SET leased_to_id = %(user)s,
        lease_expires = now() + make_interval(secs => %(ttl)s),
        lease_exploration = false
    FROM picked WHERE i.id = picked.id
    RETURNING i.id, i.lease_expires, i.predicted_label, i.original_name, i.confidence
), logged AS (
    INSERT INTO annotations_leaselog (image_id, user_id, leased_at, expires_at, exploration)
    SELECT id, %(user)s, clock_timestamp(), lease_expires, false FROM leased
)
SELECT id, lease_expires, predicted_label, original_name, confidence FROM leased
"""
