"""The webhook address filter against IPv6 forms that carry an IPv4 address, port 0, and URL
credentials in the answers (issue 26, finding 5)."""

from __future__ import annotations

import ipaddress

import pytest

from labeling.webhooks.models import Webhook
from labeling.webhooks.services import webhook_create, webhook_ping
from labeling.webhooks.targets import embedded_ipv4

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _public_only(settings):
    settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE = False


def add(client, project, url):
    return client.post(f"/api/projects/{project.pk}/webhooks/", {"url": url}, format="json")


@pytest.mark.parametrize(
    ("host", "carried"),
    [
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64, the well-known prefix
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # ... to the cloud metadata service
        ("64:ff9b:1::a00:1", "10.0.0.1"),  # NAT64, the local-use prefix (RFC 8215)
        ("64:ff9b:1:7f00:0:100::", "127.0.0.1"),  # ... its /48 layout
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4
        ("2002:c0a8:1::", "192.168.0.1"),
        ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible
        ("::ffff:10.1.2.3", "10.1.2.3"),  # IPv4-mapped
        # Teredo: server 93.184.216.34, client 10.0.0.1 stored inverted (f5ff:fffe).
        ("2001:0:5db8:d822:0:f:f5ff:fffe", "10.0.0.1"),
    ],
)
def test_an_ipv6_address_carrying_a_private_ipv4_address_is_refused(
    alice, as_user, project, host, carried
):
    response = add(as_user(alice), project, f"http://[{host}]/hook")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "url_private"
    assert carried in error["details"]["carries"] and carried in error["message"]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "host",
    [
        "64:ff9b::5db8:d822",
        "64:ff9b:1::5db8:d822",
        "2002:5db8:d822::",
        "::ffff:93.184.216.34",
        "2001:0:5db8:d822:0:f:a247:27dd",  # Teredo, server and client 93.184.216.34
        "2606:4700:4700::1111",  # no IPv4 inside: the IPv6 rules
    ],
)
def test_an_ipv6_address_carrying_a_public_ipv4_address_is_accepted(alice, as_user, project, host):
    assert add(as_user(alice), project, f"http://[{host}]/hook").status_code == 201


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("64:ff9b::c000:221", ["192.0.2.33"]),
        ("2002:c000:221::1", ["192.0.2.33"]),
        ("::c000:221", ["192.0.2.33"]),
        ("::ffff:c000:221", ["192.0.2.33"]),
        # RFC 4380's example: server 65.54.227.120, client 192.0.2.45 (obfuscated 3fff:fdd2).
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ["65.54.227.120", "192.0.2.45"]),
        ("2606:4700::1", []),
    ],
)
def test_every_ipv6_form_that_embeds_ipv4_gives_up_its_address(address, carried):
    found = embedded_ipv4(ipaddress.IPv6Address(address))
    assert [str(a) for a in found] == carried


def test_port_0_is_refused(alice, as_user, project):
    response = add(as_user(alice), project, "http://93.184.216.34:0/hook")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "url_port"
    assert "port 0" in response.json()["error"]["message"]


def test_url_credentials_are_stored_but_every_answer_masks_them(alice, as_user, project, settings):
    client = as_user(alice)
    url = "https://bot:s3cret-pass@93.184.216.34:8443/in?team=7"
    masked = "https://bot:***@93.184.216.34:8443/in?team=7"
    created = add(client, project, url)
    assert created.status_code == 201
    hook = Webhook.objects.get()
    assert hook.url == url  # the deliveries need it
    answers = [
        created,
        client.get(f"/api/projects/{project.pk}/webhooks/"),
        client.get(f"/api/webhooks/{hook.pk}/"),
        client.patch(f"/api/webhooks/{hook.pk}/", {"description": "x"}, format="json"),
        client.post(f"/api/webhooks/{hook.pk}/test/"),
        client.get(f"/api/webhooks/{hook.pk}/deliveries/"),
    ]
    for response in answers:
        assert response.status_code in (200, 201, 202), response.content
        assert b"s3cret-pass" not in response.content
    assert answers[2].json()["url"] == masked
    assert answers[1].json()[0]["url"] == masked
    assert answers[5].json()["results"][0]["payload"]["webhook"]["url"] == masked


def test_a_lone_user_name_in_the_url_is_masked_too(alice, as_user, project):
    hook = webhook_create(project=project, user=alice, url="https://tok3n@93.184.216.34/in")
    webhook_ping(webhook=hook)
    detail = as_user(alice).get(f"/api/webhooks/{hook.pk}/")
    assert detail.json()["url"] == "https://***@93.184.216.34/in"
    log = as_user(alice).get(f"/api/webhooks/{hook.pk}/deliveries/")
    assert b"tok3n" not in log.content


def test_a_url_sent_back_with_its_masked_password_is_refused_not_stored(alice, as_user, project):
    client = as_user(alice)
    hook = webhook_create(project=project, user=alice, url="https://bot:pw@93.184.216.34/in")
    shown = client.get(f"/api/webhooks/{hook.pk}/").json()["url"]
    response = client.patch(f"/api/webhooks/{hook.pk}/", {"url": shown}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "url_masked"
    hook.refresh_from_db()
    assert hook.url == "https://bot:pw@93.184.216.34/in"
