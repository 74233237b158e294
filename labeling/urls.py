from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from labeling.annotations.api import (
    AnnotationCreateView,
    DisagreementsView,
    ImageDetailView,
    ProjectAnnotationsView,
    ResolveView,
    TaskNextView,
    TaskReleaseView,
    TaskRenewView,
)
from labeling.annotations.api_gold import GoldView, ProjectAnnotatorsView
from labeling.annotations.api_reviews import (
    ProjectReviewsView,
    ReviewDecisionView,
    ReviewDetailView,
)
from labeling.core.api import HealthView, TokenView
from labeling.exports.api import ProjectExportView
from labeling.images.api import ImageFileView, ProjectImagesView
from labeling.learning.api import (
    PredictView,
    ProjectRunsView,
    ProjectStatsView,
    ProjectVersionsView,
    RunCancelView,
    RunDetailView,
    VersionActivateView,
)
from labeling.learning.api_backbones import ProjectBackbonesView
from labeling.learning.api_explanations import ImageExplanationView
from labeling.learning.api_exports import VersionExportView
from labeling.learning.api_grid import TaskGridView
from labeling.learning.api_similar import ImageSimilarView, ProjectEmbeddingMapView
from labeling.projects.api import (
    LabelRenameView,
    MembersView,
    ProjectDetailView,
    ProjectListView,
)
from labeling.webhooks.api import (
    DeliveryRedeliverView,
    ProjectWebhooksView,
    WebhookDeliveriesView,
    WebhookDetailView,
    WebhookTestView,
)

api = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("health/", HealthView.as_view(), name="health"),
    path("projects/", ProjectListView.as_view(), name="project-list"),
    path("projects/<int:project_id>/", ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<int:project_id>/members/", MembersView.as_view(), name="project-members"),
    path(
        "projects/<int:project_id>/labels/rename/",
        LabelRenameView.as_view(),
        name="project-label-rename",
    ),
    path("projects/<int:project_id>/images/", ProjectImagesView.as_view(), name="project-images"),
    path("projects/<int:project_id>/stats/", ProjectStatsView.as_view(), name="project-stats"),
    path(
        "projects/<int:project_id>/embedding-map/",
        ProjectEmbeddingMapView.as_view(),
        name="project-embedding-map",
    ),
    path("projects/<int:project_id>/tasks/next/", TaskNextView.as_view(), name="task-next"),
    path("projects/<int:project_id>/tasks/grid/", TaskGridView.as_view(), name="task-grid"),
    path(
        "projects/<int:project_id>/annotations/",
        ProjectAnnotationsView.as_view(),
        name="project-annotations",
    ),
    path(
        "projects/<int:project_id>/disagreements/",
        DisagreementsView.as_view(),
        name="project-disagreements",
    ),
    path(
        "projects/<int:project_id>/reviews/", ProjectReviewsView.as_view(), name="project-reviews"
    ),
    path("reviews/<int:review_id>/", ReviewDetailView.as_view(), name="review-detail"),
    path("reviews/<int:review_id>/decision/", ReviewDecisionView.as_view(), name="review-decision"),
    path(
        "projects/<int:project_id>/training-runs/", ProjectRunsView.as_view(), name="project-runs"
    ),
    path("training-runs/<int:run_id>/", RunDetailView.as_view(), name="run-detail"),
    path("training-runs/<int:run_id>/cancel/", RunCancelView.as_view(), name="run-cancel"),
    path(
        "projects/<int:project_id>/backbones/",
        ProjectBackbonesView.as_view(),
        name="project-backbones",
    ),
    path(
        "projects/<int:project_id>/model-versions/",
        ProjectVersionsView.as_view(),
        name="project-versions",
    ),
    path(
        "model-versions/<int:version_id>/activate/",
        VersionActivateView.as_view(),
        name="version-activate",
    ),
    path(
        "model-versions/<int:version_id>/export/",
        VersionExportView.as_view(),
        name="version-export",
    ),
    path("projects/<int:project_id>/predict/", PredictView.as_view(), name="project-predict"),
    path("projects/<int:project_id>/export/", ProjectExportView.as_view(), name="project-export"),
    path(
        "projects/<int:project_id>/webhooks/",
        ProjectWebhooksView.as_view(),
        name="project-webhooks",
    ),
    path("webhooks/<int:webhook_id>/", WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        "webhooks/<int:webhook_id>/deliveries/",
        WebhookDeliveriesView.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver/",
        DeliveryRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path("webhooks/<int:webhook_id>/test/", WebhookTestView.as_view(), name="webhook-test"),
    path("tasks/<int:image_id>/renew/", TaskRenewView.as_view(), name="task-renew"),
    path("tasks/<int:image_id>/release/", TaskReleaseView.as_view(), name="task-release"),
    path("annotations/", AnnotationCreateView.as_view(), name="annotation-create"),
    path("images/<int:image_id>/resolve/", ResolveView.as_view(), name="image-resolve"),
    path("images/<int:image_id>/gold/", GoldView.as_view(), name="image-gold"),
    path(
        "projects/<int:project_id>/annotators/",
        ProjectAnnotatorsView.as_view(),
        name="project-annotators",
    ),
    path("images/<int:image_id>/", ImageDetailView.as_view(), name="image-detail"),
    path("images/<int:image_id>/file/", ImageFileView.as_view(), name="image-file"),
    path(
        "images/<int:image_id>/explanation/",
        ImageExplanationView.as_view(),
        name="image-explanation",
    ),
    path("images/<int:image_id>/similar/", ImageSimilarView.as_view(), name="image-similar"),
    # The API's description is public; everything it describes needs authentication.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api)),
    path("", include("labeling.web.urls")),
]

handler400 = "labeling.core.api_errors.json_400"
handler404 = "labeling.core.api_errors.json_404"
handler500 = "labeling.core.api_errors.json_500"
