"""The jobs this appliance runs on a schedule, and how often."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from appliance.audit.checkpoints import newest_checkpoint, write_checkpoint
from appliance.db import transaction
from appliance.models import AuditChainHead
from appliance.notify import deliver_due_mail
from appliance.notify.webhooks import deliver_due_webhooks, purge_delivery_log
from appliance.pki.ca import make_context
from appliance.pki.crl import refresh_crls
from appliance.services import Services
from appliance.workflow.archive_timestamps import renew_archive_timestamps
from appliance.workflow.automatic_seals import apply_due_automatic_seals
from appliance.workflow.certificates import notify_renewals_due
from appliance.workflow.closing import expire_and_remind
from appliance.workflow.completion import issue_missing_completion_certificates
from appliance.workflow.idempotency import purge_expired as purge_idempotent_results
from appliance.workflow.retention import sweep_retention
from appliance.workflow.seals import notify_seal_renewals_due
from appliance.workflow.sweep import sweep_unreferenced_blobs


@dataclass(frozen=True)
class Job:
    name: str
    interval: timedelta
    run: Callable[[Services], str]
    """Does the work in its own transactions; returns a one-line summary for the log."""


def refresh_crls_job(services: Services) -> str:
    pki_ctx = make_context(services.custody, services.config, services.clock)
    with transaction(services.sessions) as session:
        crls = refresh_crls(session, pki_ctx)
        return ", ".join(f"CRL {crl.number} until {crl.next_update:%Y-%m-%d %H:%M}" for crl in crls)


def sync_directory_job(services: Services) -> str:
    report = services.auth.sync_directory(force=False)
    return f"refreshed {report.refreshed}, deactivated {report.deactivated}, left {report.left}"


def purge_login_throttles_job(services: Services) -> str:
    return f"purged {services.auth.purge_login_throttles()} expired login counters"


def deliver_mail_job(services: Services) -> str:
    assert services.mailer is not None  # the job is registered only with mail on
    report = deliver_due_mail(
        services.sessions, services.mailer, services.clock, services.config.mail.from_address
    )
    return f"mailed {report.sent}, to retry {report.retried}, given up {report.failed}"


def deliver_webhooks_job(services: Services) -> str:
    assert services.webhooks is not None  # the job is registered only with integration hosts
    report = deliver_due_webhooks(services.sessions, services.webhooks, services.clock)
    keep = timedelta(days=services.config.webhooks.keep_log_days)
    purged = purge_delivery_log(services.sessions, services.clock, keep)
    return (
        f"delivered {report.delivered} webhooks, to retry {report.retried}, given up {report.failed}, "
        f"purged {purged} old deliveries"
    )


def contract_deadlines_job(services: Services) -> str:
    report = expire_and_remind(services.workflow)
    sealed = apply_due_automatic_seals(services.workflow) if services.custody else 0
    certificates = issue_missing_completion_certificates(services.workflow) if services.custody else 0
    with transaction(services.sessions) as session:
        purged = purge_idempotent_results(session, services.clock.now())
    return (
        f"expired {report.expired}, reminded {report.reminded}, applied {sealed} automatic seals, "
        f"made {certificates} certificates of completion, purged {purged} idempotent answers"
    )


def log_checkpoint_job(services: Services) -> str:
    assert services.custody is not None  # the job is registered only with an HSM
    with transaction(services.sessions) as session:
        newest = newest_checkpoint(session)
        head = session.get(AuditChainHead, 1)
        if newest is not None and head is not None and newest.seq == head.last_seq:
            return f"the log has not moved since checkpoint {newest.id} (record {newest.seq})"
        checkpoint = write_checkpoint(session, services.custody, services.clock.now())
        return f"checkpoint {checkpoint.id} signed at record {checkpoint.seq}"


def certificate_renewals_job(services: Services) -> str:
    people = notify_renewals_due(services.workflow)
    seals = notify_seal_renewals_due(services.workflow)
    return f"told {people} holders and the admins of {seals} seals that a certificate is due for renewal"


def retention_job(services: Services) -> str:
    report = sweep_retention(services.workflow)
    return (
        f"told the people of {report.notified} contracts of their deletion, deleted {report.deleted} "
        f"({report.blobs_removed} files), archived {report.archived}"
    )


def archive_timestamps_job(services: Services) -> str:
    report = renew_archive_timestamps(services.workflow)
    renewed, failed = report.renewed, report.failed
    return f"read {report.checked} due files, renewed {renewed} archive timestamps, {failed} failed"


def sweep_blobs_job(services: Services) -> str:
    report = sweep_unreferenced_blobs(services.workflow)
    return f"removed {report.removed} unreferenced blobs, kept {report.kept}"


def default_jobs(services: Services) -> list[Job]:
    """The jobs that apply to this configuration (no HSM: no CRLs; no directory: no sync)."""
    # failed-login counters pile up with every name and address tried (the local
    # administrator's logins too); keep the table small
    jobs = [
        Job("login-throttle-purge", timedelta(hours=1), purge_login_throttles_job),
        # deadlines are set to the minute; expiring within a quarter of an hour is close enough
        Job("contract-deadlines", timedelta(minutes=15), contract_deadlines_job),
    ]
    if services.custody is not None:
        # well inside the CRL's validity so relying parties never see it lapse
        jobs.append(Job("crl-refresh", timedelta(hours=1), refresh_crls_job))
        # what a database writer could rewrite unseen is at most the hour since the last one
        jobs.append(Job("log-checkpoint", timedelta(hours=1), log_checkpoint_job))
        # the notice says "within 30 days": a day late is still weeks early
        jobs.append(Job("certificate-renewals", timedelta(hours=24), certificate_renewals_job))
        # renewals are due months ahead of any expiry; a day's delay changes nothing
        jobs.append(Job("archive-timestamps", timedelta(hours=24), archive_timestamps_job))
    if services.directory is not None:
        jobs.append(Job("directory-sync", timedelta(hours=24), sync_directory_job))
    if services.mailer is not None:
        # as often as the timer fires: notices should not wait
        jobs.append(Job("mail-delivery", timedelta(minutes=1), deliver_mail_job))
    if services.webhooks is not None:
        # integrations wait for these: as often as the timer fires
        jobs.append(Job("webhook-delivery", timedelta(minutes=1), deliver_webhooks_job))
    # periods are counted in months and people are told a month ahead: once a day is plenty
    jobs.append(Job("retention", timedelta(hours=24), retention_job))
    # what a crash between storing a blob and committing leaves is only wasted room: no hurry
    jobs.append(Job("blob-sweep", timedelta(hours=6), sweep_blobs_job))
    return jobs
