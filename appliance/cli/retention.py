"""`appliance retention`: the retention sweep, run by hand or listed as a dry run."""

from __future__ import annotations

import click

from appliance.cli.common import load_cli_config, open_services
from appliance.workflow.retention import RetentionStep, Step, sweep_retention


@click.group()
def retention() -> None:
    """Retention: delete expired drafts and closed contracts, archive completed ones."""


@retention.command()
@click.option("--dry-run", is_flag=True, help="List what the sweep would do; change nothing.")
@click.pass_context
def sweep(ctx: click.Context, dry_run: bool) -> None:
    """Tell people of coming deletions, delete what is due and archive what is due (also a scheduled job)."""
    services = open_services(load_cli_config(ctx))
    would = "would " if dry_run else ""

    def show(step: RetentionStep) -> None:
        due = "deleted on" if step.step is Step.NOTIFY else "due since"
        what = f"{would}{step.step.value}\tcontract {step.contract_id}\t{step.state.value}"
        click.echo(f"{what}\t{due} {step.due:%Y-%m-%d}")

    report = sweep_retention(services.workflow, dry_run=dry_run, on_step=show)
    click.echo(
        f"{would}notify {report.notified}, {would}delete {report.deleted} "
        f"({report.blobs_removed} files removed), {would}archive {report.archived}"
    )
