"""The domain events: how a lower app's change causes work in a higher one (DESIGN.md section 6).

Apps are layered, lowest first: core < projects < images < annotations < learning <
webhooks, exports < web. A module imports only from its own app and lower ones
(``make lint`` checks it with import-linter). When a change owned by a lower app must cause
work in a higher one - a label queues a retrain, an upload queues scoring, a class rename
rewrites rows, anything announces a webhook - the owning service sends one of the few events
below and the higher app subscribes in its ``receivers.py`` (connected in
``AppConfig.ready()``). docs/architecture.md has the table of who sends and who receives.

Receivers run synchronously, inside the sender's transaction when it sends from one (every
sender below does, but ``images_added``): the webhook outbox row commits or rolls back with the
change that caused it, and a receiver that raises rolls the change back. Work that must wait
for the commit says so itself with ``transaction.on_commit``. Senders use ``send``, never
``send_robust``: a receiver's failure is the change's failure. These are not model signals:
nothing here fires on ``save()``.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent by images.services.images_ingest once per upload or import, after its last batch
# committed (each batch is its own transaction). Arguments: project, image_ids (the created
# images), labeled (how many of them arrived with a label).
images_added = Signal()

# Sent when images reach a (new) consensus label, in the transaction that labeled them:
# annotations.services (a submission, a resolution, a consensus recompute) and
# images.services (an import's labels, per batch), annotations.gold (an admin's gold label).
# Arguments: project, images (Image rows as saved), source (annotations.models.AnnotationSource
# value, "consensus" for a recompute, "gold" for a gold label), user (who labeled; None for a
# recompute or a gold label).
images_labeled = Signal()

# Sent by annotations.gold.gold_answer_submit when an annotator's answer to a gold question
# takes their gold accuracy in the project below project.gold_alert_accuracy (with at least
# GOLD_ALERT_MIN_ANSWERS answers), having not been below it before that answer: once per
# crossing, in the answer's transaction. Never when the threshold is 0. Arguments: project,
# user (the annotator), answered, correct (their gold answers, and the correct ones, now),
# accuracy (correct / answered), threshold.
annotator_quality_low = Signal()

# Sent by projects.services.project_update inside its transaction, after the row is saved.
# Arguments: project, changed ({field: (before, after)} for the fields whose value changed).
# A receiver may refuse the change by raising ServiceError (it rolls back).
project_settings_changed = Signal()

# Sent by projects.services.project_label_rename inside its transaction, under the project's
# FOR UPDATE lock. Arguments: project, old, new.
class_renamed = Signal()

# Sent by projects.services.project_delete inside its transaction, before the project's row
# is deleted: each app deletes its own rows of the project in set-based statements (the
# foreign keys are checked at commit). Arguments: project.
project_deleted = Signal()

# Sent by learning.runs when a run succeeds or fails, in the transaction that records it.
# Arguments: run_id.
run_finished = Signal()

# Sent by learning.runs when a model version becomes the active one (it was not before), in
# that transaction. Arguments: version, user (an admin's activation; None for a promotion).
version_activated = Signal()
