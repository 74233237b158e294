"""``?ordering=``: DRF's OrderingFilter drops a field it does not know and sorts by the rest,
so a typo reads as "sorted" when it is not. Here any unknown field is a 400 that lists the
allowed ones, and the schema declares them. Tested by tests/labeling/core/test_filters.py.
"""

from __future__ import annotations

from rest_framework.filters import OrderingFilter

from labeling.core.errors import ValidationFailed


class StrictOrderingFilter(OrderingFilter):
    def get_ordering(self, request, queryset, view):
        param = request.query_params.get(self.ordering_param)
        if param:
            allowed = self.allowed(view)
            unknown = [
                term
                for term in (part.strip() for part in param.split(","))
                if (term[1:] if term.startswith("-") else term) not in allowed
            ]
            if unknown:
                raise ValidationFailed(
                    f"unknown ordering {unknown[0][:50]!r}; use one of {', '.join(allowed)} "
                    "(a leading - sorts descending; several, comma-separated)",
                    code="invalid_parameter",
                    details={"parameter": self.ordering_param, "choices": allowed},
                )
        return super().get_ordering(request, queryset, view)

    @staticmethod
    def allowed(view) -> list[str]:
        return list(view.ordering_fields)

    def get_schema_operation_parameters(self, view):
        allowed = self.allowed(view)
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": (
                    "Sort by one of these fields (a leading - sorts descending); several may "
                    "be given, comma-separated. Anything else is a 400."
                ),
                "schema": {
                    "type": "string",
                    "enum": [p + name for name in allowed for p in ("", "-")],
                },
            }
        ]
