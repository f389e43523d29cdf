"""`appliance jobs`: run scheduled work (the systemd timer calls `run-due`)."""

from __future__ import annotations

import click
from sqlalchemy import select

from appliance.cli.common import load_cli_config, open_services
from appliance.jobs import default_jobs, run_due_jobs
from appliance.jobs.runner import Outcome
from appliance.models import JobRun
from appliance.services import Services


def _services(ctx: click.Context) -> Services:
    return open_services(load_cli_config(ctx))


@click.group()
def jobs() -> None:
    """Scheduled work: CRL refresh, directory sync, mail, contract deadlines and reminders, purges."""


@jobs.command("run-due")
@click.option("--job", "only", multiple=True, help="Run only this job (repeatable).")
@click.option("--force", is_flag=True, help="Run even when the job's interval has not passed.")
@click.pass_context
def run_due(ctx: click.Context, only: tuple[str, ...], force: bool) -> None:
    """Run the jobs that are due; exit 1 when one of them failed."""
    services = _services(ctx)
    selected = default_jobs(services)
    unknown = set(only) - {job.name for job in selected}
    if unknown:
        names = ", ".join(job.name for job in selected) or "none in this configuration"
        raise click.UsageError(f"unknown job {', '.join(sorted(unknown))}; jobs: {names}")
    if only:
        selected = [job for job in selected if job.name in only]
    outcomes = run_due_jobs(services, selected, force=force)
    for outcome in outcomes:
        detail = f" - {outcome.summary}" if outcome.summary else ""
        click.echo(f"{outcome.name}: {outcome.outcome.value}{detail}")
    if any(o.outcome is Outcome.FAILED for o in outcomes):
        raise click.exceptions.Exit(1)


@jobs.command("list")
@click.pass_context
def list_jobs(ctx: click.Context) -> None:
    """Show each job, its interval and its last run."""
    services = _services(ctx)
    with services.sessions() as session:
        runs = {row.name: row for row in session.execute(select(JobRun)).scalars()}
    for job in default_jobs(services):
        row = runs.get(job.name)
        last = (
            f"last {row.last_status} at {row.last_finished_at:%Y-%m-%d %H:%M} UTC: {row.last_summary}"
            if row is not None and row.last_finished_at is not None
            else "never run"
        )
        click.echo(f"{job.name:16} every {job.interval}  {last}")
