"""Webhooks end to end: a system admin registers an endpoint, a contract's events are queued
in its transactions and delivered by the job to a real HTTP server on 127.0.0.1, signed so
that the receiver's check passes; failures are retried with growing waits, then given up
and redelivered by hand; nothing goes to a host outside `webhooks.allowed_hosts`. SQLite and
PostgreSQL."""

from __future__ import annotations

import ipaddress
import json
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from appliance.config import WebhooksConfig
from appliance.errors import Conflict, Forbidden, InvalidInput
from appliance.jobs.registry import default_jobs
from appliance.jobs.runner import run_due_jobs
from appliance.models import DeliveryStatus, Role, User
from appliance.notify.webhook_transport import HttpTransport
from appliance.notify.webhooks import MAX_ATTEMPTS, deliver_due_webhooks, verify_signature
from appliance.workflow import webhooks
from tests.fakes.clock import FakeClock
from tests.fixtures.webhooks import WebhookReceiver, start_receiver
from tests.pki.test_external_ca import enterprise_root
from tests.workflow.conftest import CLIENT, WorkflowEnv, party_id

EVENTS = ["contract.sent", "contract.signed", "contract.completed"]


def _env(workflow_factory: Any, db_url: str | None = None, **section: Any) -> WorkflowEnv:
    clock = FakeClock()
    allowed = {"allowed_hosts": ["127.0.0.0/8"], "allow_http": True, **section}
    env = workflow_factory(db_url, clock=clock, webhooks=allowed)
    env.add_person("sysadmin", "Sys Admin", Role.SYSTEM_ADMIN)
    return env


def _organisation(env: WorkflowEnv) -> int:
    with env.services.sessions() as session:
        return session.scalars(select(User.organisation_id).where(User.username == "initiator")).one()


def _deliver(env: WorkflowEnv) -> Any:
    assert env.services.webhooks is not None
    return deliver_due_webhooks(env.services.sessions, env.services.webhooks, env.services.clock)


def test_a_signed_contract_tells_the_endpoint_each_step_signed_and_without_names(
    workflow_factory, any_db_url, webhook_receiver: WebhookReceiver
) -> None:
    env = _env(workflow_factory, any_db_url)
    registered = webhooks.register_endpoint(
        env.ctx, env.people["sysadmin"], CLIENT, _organisation(env), webhook_receiver.url(), EVENTS, "ERP"
    )
    view = env.start([("alice", 1)])
    env.sign("alice", view.id, party_id(view, "张伟"))
    (job,) = [job for job in default_jobs(env.services) if job.name == "webhook-delivery"]
    (outcome,) = run_due_jobs(env.services, [job])
    assert outcome.summary == "delivered 3 webhooks, to retry 0, given up 0, purged 0 old deliveries"

    bodies = [json.loads(r.body) for r in webhook_receiver.received]
    assert [b["type"] for b in bodies] == EVENTS
    assert [b["contract"]["state"] for b in bodies] == ["signing", "signing", "completed"]  # as each left it
    assert {b["contract"]["id"] for b in bodies} == {view.id}
    assert bodies[1]["data"]["party_id"] == party_id(view, "张伟")
    now = env.services.clock.now()
    for received in webhook_receiver.received:
        assert received.path == "/hooks/esign"
        assert verify_signature(registered.secret, received.headers, received.body, now)
        assert not verify_signature("another secret", received.headers, received.body, now)
        assert not verify_signature(registered.secret, received.headers, received.body + b" ", now)
        assert "张伟" not in received.body.decode() and "alice" not in received.body.decode()
    late = now + timedelta(minutes=6)  # a replayed delivery is refused by its timestamp
    first = webhook_receiver.received[0]
    assert not verify_signature(registered.secret, first.headers, first.body, late)

    log = webhooks.deliveries(env.ctx, env.people["sysadmin"], registered.endpoint.id)
    assert [(d.event_type, d.status, d.last_status_code) for d in log] == [
        (t, DeliveryStatus.DELIVERED, 204) for t in reversed(EVENTS)
    ]
    assert _deliver(env).delivered == 0  # nothing twice


def test_failures_are_retried_with_growing_waits_then_given_up_and_redelivered(
    workflow_factory, webhook_receiver: WebhookReceiver
) -> None:
    env = _env(workflow_factory)
    clock = env.services.clock
    admin = env.people["sysadmin"]
    endpoint = webhooks.register_endpoint(
        env.ctx, admin, CLIENT, _organisation(env), webhook_receiver.url(), ["contract.sent"]
    ).endpoint
    env.start([("alice", 1)])
    webhook_receiver.status = 503
    waits = []
    for _attempt in range(MAX_ATTEMPTS):
        _deliver(env)
        (delivery,) = webhooks.deliveries(env.ctx, admin, endpoint.id)
        if delivery.next_attempt_at is not None:
            waits.append(delivery.next_attempt_at - clock.now())
            assert _deliver(env).retried == 0  # not before its time
            clock.set(delivery.next_attempt_at)
    assert waits == [timedelta(minutes=2**n) for n in range(MAX_ATTEMPTS - 1)]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, MAX_ATTEMPTS)
    assert delivery.last_status_code == 503
    assert delivery.last_error == "the endpoint answered 503"
    assert len(webhook_receiver.received) == MAX_ATTEMPTS
    assert len({r.headers["Esign-Webhook-Id"] for r in webhook_receiver.received}) == 1  # one event

    webhook_receiver.status = 200
    again = webhooks.redeliver(env.ctx, admin, CLIENT, endpoint.id, delivery.id)
    assert again.status is DeliveryStatus.PENDING
    with pytest.raises(Conflict):
        webhooks.redeliver(env.ctx, admin, CLIENT, endpoint.id, delivery.id)
    assert _deliver(env).delivered == 1
    assert webhooks.webhook_endpoint(env.ctx, admin, endpoint.id).failed == 0

    webhooks.disable_endpoint(env.ctx, admin, CLIENT, endpoint.id)
    env.start([("alice", 1)])
    assert len(webhooks.deliveries(env.ctx, admin, endpoint.id)) == 1  # nothing new queued


def test_a_redirect_is_an_answer_and_is_not_followed(
    workflow_factory, webhook_receiver: WebhookReceiver
) -> None:
    env = _env(workflow_factory)
    elsewhere = start_receiver()
    try:
        webhook_receiver.answers.append((302, {"Location": elsewhere.url()}))
        admin, org = env.people["sysadmin"], _organisation(env)
        webhooks.register_endpoint(env.ctx, admin, CLIENT, org, webhook_receiver.url(), ["contract.sent"])
        env.start([("alice", 1)])
        assert _deliver(env).retried == 1
        assert elsewhere.received == []
    finally:
        elsewhere.server.shutdown()
        elsewhere.server.server_close()


def test_only_the_allowed_integration_hosts_are_registered_or_reached(
    workflow_factory, webhook_receiver: WebhookReceiver
) -> None:
    env = _env(workflow_factory, allowed_hosts=["erp.corp.example", "10.20.0.0/16"])
    admin, org = env.people["sysadmin"], _organisation(env)
    refused = {
        "http://127.0.0.1:8080/admin": "not an allowed integration host",
        "http://10.30.0.5/hooks": "not an allowed integration host",
        "http://localhost:8080/": "resolves outside the allowed networks",
        "https://erp.corp.example/hooks": "webhooks.ca_file",
        "ftp://erp.corp.example/": "https:// URLs",
        "http://user:pw@erp.corp.example/": "no user name or password",
    }
    for url, why in refused.items():
        with pytest.raises(InvalidInput, match=why):
            webhooks.register_endpoint(env.ctx, admin, CLIENT, org, url, ["contract.sent"])
    with pytest.raises(InvalidInput, match=r"Unknown event types: contract\.deleted"):
        webhooks.register_endpoint(env.ctx, admin, CLIENT, org, "http://10.20.0.5/", ["contract.deleted"])
    with pytest.raises(Forbidden):
        orgadmin = env.people["orgadmin"]
        webhooks.register_endpoint(env.ctx, orgadmin, CLIENT, org, "http://10.20.0.5/", ["contract.sent"])


def test_an_endpoint_taken_off_the_allow_list_is_not_reached(
    workflow_factory, webhook_receiver: WebhookReceiver
) -> None:
    env = _env(workflow_factory)
    admin = env.people["sysadmin"]
    endpoint = webhooks.register_endpoint(
        env.ctx, admin, CLIENT, _organisation(env), webhook_receiver.url(), ["contract.sent"]
    ).endpoint
    env.start([("alice", 1)])
    # IT narrowed the list since: the appliance restarted with this config
    transport = HttpTransport(WebhooksConfig(allowed_hosts=["10.20.0.0/16"], allow_http=True))
    report = deliver_due_webhooks(env.services.sessions, transport, env.services.clock)
    assert report.retried == 1 and webhook_receiver.received == []
    (delivery,) = webhooks.deliveries(env.ctx, admin, endpoint.id)
    assert delivery.last_error is not None and "not an allowed integration host" in delivery.last_error


def _tls_receiver(tmp_path: Path) -> tuple[WebhookReceiver, Path]:
    """A receiver over TLS with a certificate from a CA of its own; returns that CA's PEM."""
    ca = enterprise_root("Integration CA")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    chain, key_file, ca_file = tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem"
    chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key_file)
    return start_receiver(context), ca_file


def test_https_endpoints_are_trusted_only_through_the_configured_ca(workflow_factory, tmp_path: Path) -> None:
    receiver, ca_file = _tls_receiver(tmp_path)
    try:
        env = _env(workflow_factory, allow_http=False, ca_file=str(ca_file))
        admin = env.people["sysadmin"]
        url = receiver.url(scheme="https")
        secret = webhooks.register_endpoint(
            env.ctx, admin, CLIENT, _organisation(env), url, ["contract.sent"]
        ).secret
        env.start([("alice", 1)])
        with pytest.raises(InvalidInput, match="https:// URLs"):
            webhooks.register_endpoint(
                env.ctx, admin, CLIENT, _organisation(env), receiver.url(), ["contract.sent"]
            )

        # another appliance trusting another CA refuses the receiver's certificate
        other = enterprise_root("Someone else's CA")
        other_file = tmp_path / "other.pem"
        other_file.write_bytes(other.cert.public_bytes(serialization.Encoding.PEM))
        distrust = HttpTransport(WebhooksConfig(allowed_hosts=["127.0.0.0/8"], ca_file=other_file))
        assert deliver_due_webhooks(env.services.sessions, distrust, env.services.clock).retried == 1
        (delivery,) = webhooks.deliveries(env.ctx, admin, webhooks.list_endpoints(env.ctx, admin)[0].id)
        assert delivery.last_error is not None and "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
        assert receiver.received == []

        # a CA file gone missing fails the deliveries with what to fix, not the appliance's start
        env.services.clock.set(delivery.next_attempt_at)  # type: ignore[arg-type]
        missing = HttpTransport(WebhooksConfig(allowed_hosts=["127.0.0.0/8"], ca_file=tmp_path / "gone.pem"))
        assert deliver_due_webhooks(env.services.sessions, missing, env.services.clock).retried == 1
        (delivery,) = webhooks.deliveries(env.ctx, admin, webhooks.list_endpoints(env.ctx, admin)[0].id)
        assert delivery.last_error is not None and "webhooks.ca_file" in delivery.last_error

        env.services.clock.set(delivery.next_attempt_at)  # type: ignore[arg-type]
        assert _deliver(env).delivered == 1
        (received,) = receiver.received
        assert verify_signature(secret, received.headers, received.body, env.services.clock.now())
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_settled_deliveries_leave_the_log_after_the_kept_days(
    workflow_factory, webhook_receiver: WebhookReceiver
) -> None:
    env = _env(workflow_factory, keep_log_days=30)
    admin = env.people["sysadmin"]
    endpoint = webhooks.register_endpoint(
        env.ctx, admin, CLIENT, _organisation(env), webhook_receiver.url(), ["contract.sent"]
    ).endpoint
    env.start([("alice", 1)])
    _deliver(env)
    webhook_receiver.status = 500
    env.start([("alice", 1)])  # still being tried: it stays, however old
    (job,) = [job for job in default_jobs(env.services) if job.name == "webhook-delivery"]
    env.services.clock.advance(timedelta(days=31))
    (outcome,) = run_due_jobs(env.services, [job], force=True)
    assert outcome.summary is not None and outcome.summary.endswith("purged 1 old deliveries")
    assert [d.status for d in webhooks.deliveries(env.ctx, admin, endpoint.id)] == [DeliveryStatus.PENDING]
