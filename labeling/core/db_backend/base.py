"""Django's PostgreSQL backend, pointed at the embedded server, which it starts on demand.

Selected by ``labeling/settings.py`` when ``DATABASE_URL`` is not set. Everything else about
the connection is stock ``django.db.backends.postgresql``.
"""

from __future__ import annotations

from pathlib import Path

from django.db.backends.postgresql import base

from labeling.core import embedded_pg


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict:
        server = embedded_pg.ensure_server(Path(self.settings_dict["EMBEDDED_PGDATA"]))
        params = super().get_connection_params()
        params["host"] = server.socket_dir
        params["user"] = server.user
        return params
