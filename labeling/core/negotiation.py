"""Content negotiation for a JSON-only API.

The browsable API is off (``DEFAULT_RENDERER_CLASSES`` is JSON alone), so ``?format=api``,
or any ``?format=`` no renderer of the view has, is not a renderer switch: DRF would answer a
bare 404 for it; here it is ignored and the answer is JSON. ``?format=json`` still picks the
JSON schema at ``/api/schema/``. ``Accept`` is honoured as DRF does: a client that accepts
only ``text/html`` gets 406, in JSON. Tested by tests/labeling/core/test_middleware.py.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class JSONOnlyNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers, format):
        return [renderer for renderer in renderers if renderer.format == format] or renderers
