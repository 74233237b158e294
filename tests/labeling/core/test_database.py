from __future__ import annotations

import pytest
from django.db import connection


@pytest.mark.django_db
def test_the_database_is_real_postgresql():
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        (version,) = cursor.fetchone()
    assert connection.vendor == "postgresql"
    assert int(version) >= 140000
