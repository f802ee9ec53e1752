"""Webhooks and notifications cannot be turned on the service (issue 11):
no requests into its own network in any spelling (checked when a URL is given
and again on the address delivery connects to), signatures that resist
replay and survive a secret's rotation, and a circuit breaker per agent."""

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import socket
import ssl
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from reviewqueue.actions import lifecycle
from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.core import netguard
from reviewqueue.models import (
    Action,
    Agent,
    AuditEvent,
    NotificationChannel,
    OutboxMessage,
)
from reviewqueue.notify import outbox as notifications
from tests.conftest import make_agent, submission
from tests.hooks_server import HookServer

pytestmark = pytest.mark.django_db

# Every spelling the attacker's report used, and the neighbours of each.
INWARD = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://2130706433/",
    "http://017700000001/",
    "http://127.0.0.1./",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::7f00:1]/",
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST:8000/hooks",
    "http://hooks.localhost/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://10.0.0.5/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fd12:3456::1]/",
    "http://[2002:7f00:1::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "https://intranet/hooks",
]


def _allow(settings, *entries):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "WEBHOOK_ALLOWED_NETWORKS": list(entries)}


def _post_submission(live_server, key: str, **overrides) -> httpx.Response:
    return httpx.post(
        f"{live_server.url}/api/v1/actions",
        json=submission(**overrides),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _deliver_all() -> list[str]:
    pending = OutboxMessage.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True)
    return [notifications.deliver(pk) for pk in pending]


# ------------------------------------------------------------ submission ---


@pytest.mark.django_db(transaction=True)
def test_callback_urls_into_the_service_network_are_refused_in_every_spelling(live_server):
    client = make_agent(rate_limit_per_minute=1000)
    events = AuditEvent.objects.count()

    answers = {}
    for url in INWARD:
        response = _post_submission(live_server, client.key, callback_url=url)
        error = response.json().get("error", {})
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        answers[url] = (response.status_code, error.get("code"), details.get("location"))

    assert answers == dict.fromkeys(INWARD, (422, "unsafe_url", "body.callback_url"))
    assert Action.objects.count() == 0 and AuditEvent.objects.count() == events  # nothing written
    assert _post_submission(live_server, client.key).status_code == 201  # a public URL still is


@pytest.mark.django_db(transaction=True)
def test_credentials_in_a_callback_url_are_refused(live_server):
    client = make_agent()
    response = _post_submission(live_server, client.key, callback_url="https://hooks:s3cret@agent.example/rq")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unsafe_url" and error["details"]["reason"] == "credentials"
    assert "credentials" in error["message"]
    assert not Action.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_allow_list_admits_internal_receivers_by_network_or_name(live_server, settings):
    client = make_agent()
    assert _post_submission(live_server, client.key, callback_url="http://10.1.2.3:8080/rq").status_code == 422

    _allow(settings, "10.1.2.0/24", "hooks.localhost")
    assert _post_submission(live_server, client.key, callback_url="http://10.1.2.3:8080/rq").status_code == 201
    assert _post_submission(live_server, client.key, callback_url="http://hooks.localhost/rq").status_code == 201
    refused = _post_submission(live_server, client.key, callback_url="http://10.1.3.3:8080/rq")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unsafe_url"


@pytest.mark.django_db(transaction=True)
def test_the_admin_refuses_a_notification_channel_that_points_inward(live_server):
    User.objects.create_superuser("ada", password="pw-ada")
    ops = Group.objects.create(name="ops-hooks")
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        page = http.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        assert (
            http.post(
                "/admin/login/",
                data={"username": "ada", "password": "pw-ada", "next": "/admin/", "csrfmiddlewaretoken": token},
            ).status_code
            == 302
        )

        def add(target: str) -> httpx.Response:
            form = http.get("/admin/reviewqueue/notificationchannel/add/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
            return http.post(
                "/admin/reviewqueue/notificationchannel/add/",
                data={
                    "name": f"hook {target}",
                    "group": ops.pk,
                    "kind": "webhook",
                    "target": target,
                    "events": '["kill_switch.*"]',
                    "is_active": "on",
                    "csrfmiddlewaretoken": token,
                },
            )

        for target in (
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:127.0.0.1]:9000/",
            "https://ops:pw@hooks.example.com/rq",
        ):
            refused = add(target)
            assert refused.status_code == 200 and "errorlist" in refused.text, target
        assert not NotificationChannel.objects.exists()
        assert add("https://hooks.example.com/rq").status_code == 302
    assert NotificationChannel.objects.get().target == "https://hooks.example.com/rq"


# --------------------------------------------------------------- delivery ---


def test_delivery_checks_again_and_refuses_what_became_inward(hook_server, settings, ops_user):
    """A channel saved while the allow-list admitted the receiver (or before
    the checks existed) is checked again at delivery: nothing reaches it."""
    _allow(settings, "127.0.0.0/8", "::1")
    NotificationChannel.objects.create(
        name="ops",
        group=Group.objects.get(name="ops"),
        kind="webhook",
        target=f"http://localhost:{hook_server.port}/ops",
        events=["kill_switch.*"],
    )
    _allow(settings)

    kill_switch_set(scope="global", engaged=True, reason="drill", actor="user:olga")
    assert _deliver_all() == ["refused"]

    assert hook_server.received == []
    message = OutboxMessage.objects.get()
    assert message.status == "dead" and "loopback" in message.last_error and message.last_error.startswith("refused")


def test_the_transport_refuses_a_name_that_resolves_inward_and_connects_to_the_checked_address(hook_server):
    """No URL check in front: the transport itself resolves the name, refuses
    an inward address, and otherwise connects to the address it checked while
    keeping the name for the Host header."""
    name = "localhost"  # through the system resolver, as any name an agent could register would be
    assert netguard.address_kind(ipaddress.ip_address(socket.gethostbyname(name))) == "loopback"

    url = f"http://{name}:{hook_server.port}/inward"
    guarded = netguard.GuardedTransport(netguard.parse_allow_list([]))
    with (
        httpx.Client(transport=guarded, timeout=5) as http,
        pytest.raises(netguard.UnsafeURL, match=r"resolves to .*loopback"),
    ):
        http.post(url, content=b"{}")
    assert hook_server.received == []

    with httpx.Client(
        transport=netguard.GuardedTransport(netguard.parse_allow_list(["127.0.0.0/8", "::1"])), timeout=5
    ) as http:
        assert http.post(url, content=b"{}").status_code == 200
    [hook] = hook_server.received
    assert hook["headers"]["Host"] == f"{name}:{hook_server.port}"


def test_over_tls_the_name_is_kept_for_sni_and_the_certificate_while_the_checked_address_is_dialled(tmp_path):
    """The certificate is for "localhost" only: the delivery verifies it
    against the URL's name although it connects to the address it checked."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    seen_names = []
    served.sni_callback = lambda sock, name, context: seen_names.append(name)
    server = HookServer(tls=served)
    trusting = ssl.create_default_context(cafile=str(cert))
    transport = netguard.GuardedTransport(netguard.parse_allow_list(["127.0.0.0/8", "::1"]), ssl_context=trusting)
    try:
        with httpx.Client(transport=transport, timeout=5) as http:
            assert http.post(f"https://localhost:{server.port}/tls", content=b"{}").status_code == 200
            with pytest.raises(httpx.ConnectError, match=r"certificate|hostname|IP address mismatch"):
                http.post(f"https://127.0.0.1:{server.port}/tls", content=b"{}")  # the cert doesn't name the IP
    finally:
        server.close()
    assert seen_names[0] == "localhost" and len(server.received) == 1
    assert server.received[0]["headers"]["Host"] == f"localhost:{server.port}"


def test_an_allow_listed_receiver_gets_its_webhook_under_its_own_name(agent_client, reviewer, hook_server, settings):
    _allow(settings, "127.0.0.0/8", "::1")
    action_id = agent_client.submit(callback_url=f"http://localhost:{hook_server.port}/hooks").json()["id"]
    lifecycle.action_decide(action=Action.objects.get(pk=action_id), user=reviewer, approve=True)

    assert _deliver_all() == ["delivered"]
    [hook] = hook_server.received
    assert hook["headers"]["Host"] == f"localhost:{hook_server.port}" and hook["json"]["id"] == action_id


# ------------------------------------------------------------- signatures ---


def _verify(secret: str, hook: dict) -> dict:
    return Webhook(secret.encode()).verify(hook["body"], hook["headers"])


def test_webhooks_are_signed_with_their_id_and_time_and_a_retry_keeps_its_id(agent_client, hook_server, settings):
    _allow(settings, "127.0.0.0/8")
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "BREAKER_FAILURES": 100}
    secret = agent_client.agent.webhook_secret
    action = Action.objects.get(pk=agent_client.submit(callback_url=f"{hook_server.url}/rq").json()["id"])
    lifecycle.action_cancel(action=action)
    message = OutboxMessage.objects.get()

    hook_server.status = 503
    assert notifications.deliver(message.pk) == "retry"
    hook_server.status = 200
    later = timezone.now() + timedelta(minutes=10)
    with time_machine.travel(later, tick=False):
        OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        assert notifications.deliver(message.pk) == "delivered"
        first, retry = hook_server.received
        assert _verify(secret, retry)["status"] == "cancelled"  # the Standard Webhooks reference verifier
        # The first attempt, replayed now, is too old; its timestamp can't be moved forward unsigned.
        with pytest.raises(WebhookVerificationError, match="too old"):
            _verify(secret, first)
        with pytest.raises(WebhookVerificationError):
            moved = {**first["headers"], "webhook-timestamp": str(int(later.timestamp()))}
            _verify(secret, {**first, "headers": moved})

    assert first["headers"]["webhook-id"] == retry["headers"]["webhook-id"] == f"msg_{message.pk}"
    assert int(retry["headers"]["webhook-timestamp"]) - int(first["headers"]["webhook-timestamp"]) >= 599
    legacy = "sha256=" + hmac.new(secret.encode(), retry["body"], hashlib.sha256).hexdigest()
    assert retry["headers"]["X-Reviewqueue-Signature"] == legacy  # kept for existing receivers


def test_a_rotated_webhook_secret_signs_beside_the_old_one_until_the_grace_ends(
    agent_client, hook_server, settings, capsys
):
    _allow(settings, "127.0.0.0/8")
    old = agent_client.agent.webhook_secret

    call_command("rotate_webhook_secret", "billing-bot", "--grace", "1h")
    new = capsys.readouterr().out.split()[-1]
    assert new == Agent.objects.get(name="billing-bot").webhook_secret and new != old
    [event] = AuditEvent.objects.filter(kind="agent.webhook_secret_rotated")
    assert event.data == {"grace_seconds": 3600} and new not in str(event.data)

    def one_delivery() -> dict:
        hook_server.received.clear()
        action = Action.objects.get(pk=agent_client.submit(callback_url=f"{hook_server.url}/rq").json()["id"])
        lifecycle.action_cancel(action=action)
        assert _deliver_all() == ["delivered"]
        return hook_server.received[0]

    during = one_delivery()
    assert len(during["headers"]["webhook-signature"].split(" ")) == 2
    _verify(new, during)
    _verify(old, during)  # receivers not yet switched keep verifying
    assert during["headers"]["X-Reviewqueue-Signature"] == (
        "sha256=" + hmac.new(old.encode(), during["body"], hashlib.sha256).hexdigest()
    )

    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        after = one_delivery()
        _verify(new, after)
        with pytest.raises(WebhookVerificationError):
            _verify(old, after)
    assert len(after["headers"]["webhook-signature"].split(" ")) == 1

    call_command("rotate_webhook_secret", "billing-bot")  # no grace: the old secret stops at once
    newest = capsys.readouterr().out.split()[-1]
    hook = one_delivery()
    _verify(newest, hook)
    with pytest.raises(WebhookVerificationError):
        _verify(new, hook)


def test_receivers_on_other_stacks_verify_with_the_whsec_form(agent_client, hook_server, settings):
    """What README tells receivers that use another Standard Webhooks library."""
    _allow(settings, "127.0.0.1")
    action = Action.objects.get(pk=agent_client.submit(callback_url=hook_server.url).json()["id"])
    lifecycle.action_cancel(action=action)
    _deliver_all()
    [hook] = hook_server.received
    whsec = "whsec_" + base64.b64encode(agent_client.agent.webhook_secret.encode()).decode()
    assert Webhook(whsec).verify(hook["body"], hook["headers"])["id"] == str(action.pk)


# ---------------------------------------------------------------- breaker ---


def test_one_agents_failing_endpoint_does_not_open_the_circuit_for_another_on_the_same_host(
    agent_client, other_agent_client, hook_server, settings
):
    _allow(settings, "127.0.0.0/8")
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "BREAKER_FAILURES": 2}
    hook_server.status_for["/failing"] = 503
    for _ in range(3):
        lifecycle.action_cancel(
            action=Action.objects.get(pk=agent_client.submit(callback_url=f"{hook_server.url}/failing").json()["id"])
        )
    assert _deliver_all() == ["retry", "retry", "circuit open"]

    theirs = Action.objects.get(pk=other_agent_client.submit(callback_url=f"{hook_server.url}/fine").json()["id"])
    lifecycle.action_cancel(action=theirs)
    [message] = OutboxMessage.objects.filter(agent=other_agent_client.agent)

    assert notifications.deliver(message.pk) == "delivered"
    assert [h["path"] for h in hook_server.received] == ["/failing", "/failing", "/fine"]


# ---------------------------------------------------------------- setting ---


def test_a_nonsense_allow_list_stops_the_process_at_start(tmp_path):
    env = {"PATH": os.environ["PATH"], "REVIEWQUEUE_VAR_DIR": str(tmp_path)}
    boot = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()"
    bad = subprocess.run(
        [sys.executable, "-c", boot],
        capture_output=True,
        text=True,
        env={**env, "REVIEWQUEUE_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8, 300.1.2.3/8"},
    )
    assert bad.returncode != 0 and "REVIEWQUEUE_WEBHOOK_ALLOWED_NETWORKS" in bad.stderr and "300.1.2.3" in bad.stderr
    good = subprocess.run(
        [sys.executable, "-c", boot],
        capture_output=True,
        text=True,
        env={**env, "REVIEWQUEUE_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,fd00::/8,*.corp.example"},
    )
    assert good.returncode == 0, good.stderr
