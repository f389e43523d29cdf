"""/api/v1/templates: contract templates of your organisation. Save a draft as one, start
contracts from it by naming the people of its roles (and send them at once), retire it."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, Strict

from appliance.models import PartyKind, Routing
from appliance.web.after_response import follow_up
from appliance.web.api.models import (
    ContractOut,
    Id,
    Message,
    PageSize,
    RequestBody,
    Title,
    Username,
    contract_out,
)
from appliance.web.api.spec import responses, spec
from appliance.web.api.transport import api_blueprint, api_principal
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.web.files import ID
from appliance.workflow.drafts import MAX_PARTIES
from appliance.workflow.templates import (
    MAX_LABEL,
    MAX_NAME,
    StartFromTemplate,
    TemplateView,
    get_template,
    list_templates,
    retire_template,
    save_template,
    start_from_template,
)

bp = api_blueprint("templates_api", __name__)
TEMPLATE = f"/templates/<{ID}:template_id>"

Label = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_LABEL)]


class TemplateFieldOut(BaseModel):
    page: int = Field(description="1-based page number.")
    x: float
    y: float
    width: float
    height: float


class RoleOut(BaseModel):
    id: int
    number: int
    label: str
    kind: PartyKind
    seal_id: int | None
    seal_name: str | None
    routing_order: int
    fields: list[TemplateFieldOut]


class TemplateOut(BaseModel):
    id: int
    name: str
    filename: str
    sha256: str = Field(description="The PDF every contract started from it begins with.")
    size: int
    routing: Routing
    message: str | None
    created_by: str
    created_at: AwareDatetime
    retired_at: AwareDatetime | None
    roles: list[RoleOut]
    page_sizes: list[PageSize]
    yours_to_retire: bool


class TemplatesOut(BaseModel):
    items: list[TemplateOut]


class TemplatesQuery(BaseModel):
    include_retired: bool = False


class RoleLabelIn(RequestBody):
    party_id: Id
    label: Label


class NewTemplateIn(RequestBody):
    name: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_NAME)]
    labels: list[RoleLabelIn] = Field(
        [],
        max_length=MAX_PARTIES,
        description='The role each party plays, by party id (default "Signer 1", ...; '
        "a seal keeps its name).",
    )


class RolePersonIn(RequestBody):
    role_id: Id
    username: Username


class StartFromTemplateIn(RequestBody):
    title: Title
    not_excluded: bool = Field(
        description="Must be true: you confirm the document is none of the kinds the law keeps from "
        "electronic signing (marriage, adoption, inheritance; stopping water, heat, gas or power supply)."
    )
    people: list[RolePersonIn] = Field(
        max_length=MAX_PARTIES, description="The person for each person role of the template."
    )
    deadline: AwareDatetime | None = Field(
        None, description="With a time zone; default: contracts.default_deadline_days from now."
    )
    message: Message | None = Field(None, description="Default: the template's message.")
    send: bool = Field(False, description="Send it at once instead of leaving a draft.")


@bp.get("/templates")
@spec.validate(resp=responses(200, TemplatesOut), tags=["templates"], operation_id="list_templates")
def templates(query: TemplatesQuery) -> TemplatesOut:
    """Your organisation's templates, by name"""
    views = list_templates(
        current_services().workflow, api_principal(), include_retired=query.include_retired
    )
    return TemplatesOut(items=[_template_out(v) for v in views])


@bp.get(TEMPLATE)
@spec.validate(resp=responses(200, TemplateOut, 404), tags=["templates"], operation_id="get_template")
def template(template_id: int) -> TemplateOut:
    """One template of your organisation, with its roles and their fields"""
    return _template_out(get_template(current_services().workflow, api_principal(), template_id))


@bp.post(f"/contracts/<{ID}:contract_id>/template")
@spec.validate(
    resp=responses(201, TemplateOut, 404, 409), tags=["templates"], operation_id="save_as_template"
)
def save(contract_id: int, json: NewTemplateIn) -> tuple[TemplateOut, int]:
    """Save your draft, with its parties' fields, as a template of your organisation"""
    labels = {item.party_id: item.label for item in json.labels}
    view = save_template(
        current_services().workflow, api_principal(), client_info(), contract_id, json.name, labels
    )
    return _template_out(view), 201


@bp.post(f"{TEMPLATE}/contracts")
@spec.validate(
    resp=responses(201, ContractOut, 404, 409), tags=["templates"], operation_id="start_from_template"
)
def start(template_id: int, json: StartFromTemplateIn) -> tuple[ContractOut, int]:
    """Start a contract from a template, naming the person of each person role

    The contract has the template's PDF, fields and seals; with `send` it goes out at once
    (to its seals' approvers first where a seal needs approval).
    """
    workflow = current_services().workflow
    view = start_from_template(
        workflow,
        api_principal(),
        client_info(),
        template_id,
        StartFromTemplate(
            title=json.title,
            not_excluded=json.not_excluded,
            people={item.role_id: item.username for item in json.people},
            deadline=json.deadline,
            message=json.message,
            send=json.send,
        ),
    )
    follow_up(workflow, view)
    return contract_out(view), 201


@bp.post(f"{TEMPLATE}/retire")
@spec.validate(resp=responses(200, TemplateOut, 404), tags=["templates"], operation_id="retire_template")
def retire(template_id: int) -> TemplateOut:
    """Retire a template (whoever saved it, or an org admin): no contract starts from it any more"""
    view = retire_template(current_services().workflow, api_principal(), client_info(), template_id)
    return _template_out(view)


def _template_out(view: TemplateView) -> TemplateOut:
    return TemplateOut(
        id=view.id,
        name=view.name,
        filename=view.filename,
        sha256=view.sha256,
        size=view.size,
        routing=view.routing,
        message=view.message,
        created_by=view.created_by,
        created_at=view.created_at,
        retired_at=view.retired_at,
        roles=[
            RoleOut(
                id=r.id,
                number=r.number,
                label=r.label,
                kind=r.kind,
                seal_id=r.seal_id,
                seal_name=r.seal_name,
                routing_order=r.routing_order,
                fields=[
                    TemplateFieldOut(page=f.page, x=f.x, y=f.y, width=f.width, height=f.height)
                    for f in r.fields
                ],
            )
            for r in view.roles
        ],
        page_sizes=[PageSize(width=w, height=h) for w, h in view.page_sizes],
        yours_to_retire=view.yours_to_retire,
    )
