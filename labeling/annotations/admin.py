from __future__ import annotations

from django.contrib import admin

from labeling.annotations.models import Annotation, GoldAnswer, LabelReview, LeaseLog
from labeling.core.admin_base import ReadOnlyAdmin


@admin.register(Annotation)
class AnnotationAdmin(ReadOnlyAdmin):
    list_display = ["id", "image", "annotator", "label", "source", "created_at", "discarded_at"]
    list_filter = ["source"]
    list_select_related = ["image", "annotator"]
    search_fields = ["label", "annotator__username", "image__original_name"]


@admin.register(LeaseLog)
class LeaseLogAdmin(ReadOnlyAdmin):
    list_display = ["id", "image", "user", "leased_at", "ended_at", "skipped", "exploration"]
    list_filter = ["skipped", "exploration"]
    list_select_related = ["image", "user"]


@admin.register(GoldAnswer)
class GoldAnswerAdmin(ReadOnlyAdmin):
    list_display = ["id", "image", "annotator", "label", "expected", "correct", "created_at"]
    list_filter = ["correct"]
    list_select_related = ["image", "annotator"]


@admin.register(LabelReview)
class LabelReviewAdmin(ReadOnlyAdmin):
    list_display = ["id", "image", "state", "given_label", "model_label", "score", "found_at"]
    list_filter = ["state"]
    list_select_related = ["image"]
