"""`appliance contracts`: operators look at contracts and check their evidence."""

from __future__ import annotations

import json
import sys

import click
from pydantic import TypeAdapter

from appliance.cli.common import load_cli_config, open_services
from appliance.models import ContractState
from appliance.workflow.queries import ContractFilter, check_evidence, operator_list, operator_show
from appliance.workflow.views import ContractView


@click.group()
def contracts() -> None:
    """Contracts: list them, show one, verify its evidence."""


@contracts.command("list")
@click.option("--state", type=click.Choice([s.value for s in ContractState]), help="Only this state.")
@click.option("--title", help="Only titles containing this text.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.pass_context
def list_contracts(ctx: click.Context, state: str | None, title: str | None, limit: int) -> None:
    """List contracts, newest first."""
    services = open_services(load_cli_config(ctx))
    where = ContractFilter(state=ContractState(state) if state else None, title=title)
    for item in operator_list(services.workflow, where, limit=limit):
        deadline = f"{item.deadline:%Y-%m-%d}" if item.deadline else "-"
        click.echo(f"{item.id}\t{item.state.value}\t{deadline}\t{item.initiator_name}\t{item.title}")


@contracts.command()
@click.argument("contract_id", type=click.IntRange(1))
@click.pass_context
def show(ctx: click.Context, contract_id: int) -> None:
    """Show CONTRACT_ID as JSON: state, parties, document versions."""
    services = open_services(load_cli_config(ctx))
    view = operator_show(services.workflow, contract_id)
    click.echo(
        json.dumps(TypeAdapter(ContractView).dump_python(view, mode="json"), indent=2, ensure_ascii=False)
    )


@contracts.command("verify-evidence")
@click.argument("contract_id", type=click.IntRange(1))
@click.pass_context
def verify_evidence(ctx: click.Context, contract_id: int) -> None:
    """Check CONTRACT_ID's evidence chain and each document version's hash; exit 1 when broken."""
    services = open_services(load_cli_config(ctx))
    report = check_evidence(services.workflow, contract_id)
    for chain_break in report.breaks:
        click.echo(f"evidence event {chain_break.seq}: {chain_break.problem}")
    for problem in report.bad_versions:
        click.echo(problem)
    if not report.intact:
        click.echo(f"contract {contract_id}: evidence BROKEN", err=True)
        sys.exit(1)
    click.echo(f"contract {contract_id}: {report.events} evidence events intact, head {report.head_hash}")
