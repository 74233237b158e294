"""Webhooks, for project admins.

``/api/projects/{id}/webhooks/`` (list, create), ``/api/webhooks/{id}/`` (read, change,
delete), ``/api/webhooks/{id}/deliveries/`` (the log, newest first, cursor-paginated),
``/api/webhooks/{id}/test/`` (queue a ping). The secret is shown in the response that
created or changed it, never again; a password in the URL never (it shows as ``***``).
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.parsers import JSONParser
from labeling.core.schema import ErrorSerializer
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user
from labeling.webhooks import selectors, services
from labeling.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent
from labeling.webhooks.targets import target_display


class MaskedUrlField(serializers.CharField):
    """A webhook URL as every answer shows it: the password (or a lone user name) masked."""

    def to_representation(self, value: str) -> str:
        return target_display(value)


class DeliveryPayloadField(serializers.JSONField):
    """The body sent, with the webhook URL a ``ping`` carries masked like everywhere else."""

    def to_representation(self, value):
        hook = value.get("webhook") if isinstance(value, dict) else None
        if isinstance(hook, dict) and isinstance(hook.get("url"), str):
            value = {**value, "webhook": {**hook, "url": target_display(hook["url"])}}
        return super().to_representation(value)


class WebhookSerializer(serializers.ModelSerializer):
    url = MaskedUrlField(
        read_only=True, help_text="a password in the URL (or a lone user name) shows as ***"
    )
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = Webhook
        fields = [
            "id",
            "project",
            "url",
            "events",
            "is_active",
            "description",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="HMAC-SHA256 key of X-LabelLoop-Signature; shown this once"
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookChangedSerializer(WebhookSerializer):
    secret = serializers.SerializerMethodField(
        help_text="the new secret when this request changed it (shown this once), else null"
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, webhook: Webhook) -> str | None:
        return webhook.secret if self.context.get("secret_changed") else None


_EVENTS = serializers.ListField(
    child=serializers.ChoiceField(choices=WebhookEvent.choices),
    allow_empty=False,
    required=False,
    help_text="default: all of them",
)


class WebhookInSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s); public addresses only")
    events = _EVENTS
    secret = serializers.CharField(
        required=False,
        trim_whitespace=False,
        min_length=services.MIN_SECRET_LENGTH,
        max_length=services.MAX_SECRET_LENGTH,
        help_text="default: a generated one",
    )
    is_active = serializers.BooleanField(required=False, default=True)
    description = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )


class WebhookChangeSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        allow_empty=False,
        required=False,
    )
    secret = serializers.CharField(
        required=False,
        trim_whitespace=False,
        min_length=services.MIN_SECRET_LENGTH,
        max_length=services.MAX_SECRET_LENGTH,
    )
    rotate_secret = serializers.BooleanField(
        required=False, default=False, help_text="true: draw a new secret (in the response)"
    )
    is_active = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class DeliverySerializer(serializers.ModelSerializer):
    next_attempt_at = serializers.SerializerMethodField()
    payload = DeliveryPayloadField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook",
            "event",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "payload",
        ]

    def get_next_attempt_at(self, delivery: WebhookDelivery) -> str | None:
        if delivery.status != DeliveryStatus.PENDING:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)


class ProjectWebhooksView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses=WebhookSerializer(many=True), summary="List the project's webhooks")
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.ADMIN)
        webhooks = selectors.webhook_list(project=project).select_related("created_by")
        return Response(WebhookSerializer(webhooks, many=True).data)

    @extend_schema(
        request=WebhookInSerializer,
        responses={201: WebhookSecretSerializer},
        summary="Add a webhook (the response shows its secret, once)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.ADMIN)
        body = WebhookInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        webhook = services.webhook_create(project=project, user=request.user, **body.validated_data)
        return Response(WebhookSecretSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    parser_classes = [JSONParser]

    def _get(self, request: Request, webhook_id: int) -> Webhook:
        return selectors.webhook_get_for_user(user=request.user, webhook_id=webhook_id)

    @extend_schema(responses=WebhookSerializer, summary="A webhook (without its secret)")
    def get(self, request: Request, webhook_id: int) -> Response:
        return Response(WebhookSerializer(self._get(request, webhook_id)).data)

    @extend_schema(
        request=WebhookChangeSerializer,
        responses=WebhookChangedSerializer,
        summary="Change a webhook (the secret is in the response only when it changed)",
    )
    def patch(self, request: Request, webhook_id: int) -> Response:
        webhook = self._get(request, webhook_id)
        body = WebhookChangeSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        webhook, secret_changed = services.webhook_update(webhook=webhook, **body.validated_data)
        context = {"secret_changed": secret_changed}
        return Response(WebhookChangedSerializer(webhook, context=context).data)

    @extend_schema(responses={204: None}, summary="Delete a webhook and its delivery log")
    def delete(self, request: Request, webhook_id: int) -> Response:
        services.webhook_delete(webhook=self._get(request, webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestView(APIView):
    @extend_schema(
        request=None,
        responses={202: DeliverySerializer, 409: ErrorSerializer},
        summary="Queue a ping event to this webhook (sent by the worker, not this request)",
    )
    def post(self, request: Request, webhook_id: int) -> Response:
        webhook = selectors.webhook_get_for_user(user=request.user, webhook_id=webhook_id)
        delivery = services.webhook_ping(webhook=webhook, user=request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryRedeliverView(APIView):
    @extend_schema(
        request=None,
        responses={202: DeliverySerializer, 409: ErrorSerializer},
        summary="Send a delivery's body again, as a new delivery (failed or lost ones)",
    )
    def post(self, request: Request, webhook_id: int, delivery_id: int) -> Response:
        webhook = selectors.webhook_get_for_user(user=request.user, webhook_id=webhook_id)
        delivery = selectors.delivery_get(webhook=webhook, delivery_id=delivery_id)
        again = services.webhook_redeliver(delivery=delivery)
        return Response(DeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event = django_filters.CharFilter()

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event"]


class DeliveryPagination(CursorPagination):
    page_size = 20  # an image.labeled body can hold 500 images
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = "-id"


class WebhookDeliveriesView(generics.ListAPIView):
    """The delivery log, newest first: pending, delivered and failed deliveries with their
    attempts, last HTTP status and error, and the body that was (or will be) sent."""

    serializer_class = DeliverySerializer
    pagination_class = DeliveryPagination
    filterset_class = DeliveryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        webhook = selectors.webhook_get_for_user(
            user=self.request.user, webhook_id=self.kwargs["webhook_id"]
        )
        return selectors.delivery_list(webhook=webhook)
