"""/api/v1/contracts: drafting, sending, signing, closing, documents and evidence.

Each view calls one workflow command for the bearer token's owner. A contract the caller
may not see answers 404 exactly like one that does not exist (appliance.workflow.access).
"""

from __future__ import annotations

from typing import BinaryIO, cast

from werkzeug.wrappers import Response as BaseResponse

from appliance.web.after_response import follow_up
from appliance.web.api.models import (
    CodeSentOut,
    ContractOut,
    ContractPageOut,
    ContractQuery,
    EvidenceListOut,
    IdempotencyHeaders,
    NewContractForm,
    NewPartyIn,
    ReasonIn,
    SignIn,
    code_sent_out,
    contract_out,
    contract_page_out,
    evidence_out,
)
from appliance.web.api.spec import file_response, responses, spec
from appliance.web.api.transport import api_blueprint, api_principal, idempotency_key
from appliance.web.auth.principal import client_info
from appliance.web.context import current_services
from appliance.web.files import ID, file_download, upload_sha256
from appliance.workflow.closing import (
    end_contract,
    reject_contract,
    remind_parties,
    withdraw_contract,
)
from appliance.workflow.drafts import (
    NewContract,
    NewField,
    NewParty,
    add_party,
    create_contract,
    remove_party,
    send_contract,
)
from appliance.workflow.queries import (
    ContractFilter,
    Document,
    contract_evidence,
    get_contract,
    list_contracts,
    open_document,
)
from appliance.workflow.signatures import request_code, sign_party
from appliance.workflow.voiding import start_voiding

bp = api_blueprint("contracts_api", __name__)

CONTRACT = f"/contracts/<{ID}:contract_id>"
PARTY = f"{CONTRACT}/parties/<{ID}:party_id>"
DOCUMENTS = ", ".join(d.value for d in Document)


@bp.post("/contracts")
@spec.validate(resp=responses(201, ContractOut, 422), tags=["contracts"], operation_id="create_contract")
def create(form: NewContractForm, headers: IdempotencyHeaders) -> tuple[ContractOut, int]:
    """Start a contract from a PDF (a draft)

    The PDF is checked and rewritten (active content removed) before it is stored; a file that
    is not a plain, unsigned, unencrypted PDF is refused with 422 and a code saying why. With an
    Idempotency-Key, a retry returns the first answer instead of a second draft.
    """
    upload = cast(BinaryIO, form.file.stream)  # werkzeug types it IO[bytes]; it is a binary file
    view = create_contract(
        current_services().workflow,
        api_principal(),
        client_info(),
        NewContract(
            title=form.title,
            filename=form.file.filename or "",
            not_excluded=form.not_excluded,
            routing=form.routing,
            message=form.message,
            deadline=form.deadline,
        ),
        upload,
        idempotency=idempotency_key(headers, "create", _form_content(form, upload)),
    )
    return contract_out(view), 201


def _form_content(form: NewContractForm, upload: BinaryIO) -> dict[str, object]:
    """What a create request asks for, the file by its sha256 (the stream is left at its start)."""
    fields = form.model_dump(mode="json", exclude={"file"})
    return {**fields, "file_sha256": upload_sha256(upload), "filename": form.file.filename or ""}


@bp.get("/contracts")
@spec.validate(resp=responses(200, ContractPageOut, 403), tags=["contracts"], operation_id="list_contracts")
def list_(query: ContractQuery) -> ContractPageOut:
    """Contracts you can see, newest first, a page at a time"""
    page = list_contracts(
        current_services().workflow,
        api_principal(),
        ContractFilter(
            state=query.state,
            role=query.role,
            created_from=query.created_from,
            created_to=query.created_to,
            title=query.title,
            party=query.party,
            archived=query.archived,
        ),
        cursor=query.cursor,
        limit=query.limit,
    )
    return contract_page_out(page)


@bp.get(CONTRACT)
@spec.validate(resp=responses(200, ContractOut, 404), tags=["contracts"], operation_id="get_contract")
def get(contract_id: int) -> ContractOut:
    """One contract, with its parties and document versions"""
    return contract_out(
        get_contract(current_services().workflow, api_principal(), client_info(), contract_id)
    )


@bp.post(f"{CONTRACT}/parties")
@spec.validate(resp=responses(201, ContractOut, 404, 409), tags=["parties"], operation_id="add_party")
def add(contract_id: int, json: NewPartyIn) -> tuple[ContractOut, int]:
    """Add a party (a person by login name, or a seal) and its signature fields to a draft"""
    view = add_party(
        current_services().workflow,
        api_principal(),
        client_info(),
        contract_id,
        NewParty(
            kind=json.kind,
            fields=tuple(NewField(f.page, f.x, f.y, f.width, f.height) for f in json.fields),
            username=json.username,
            seal_id=json.seal_id,
            routing_order=json.routing_order,
        ),
    )
    return contract_out(view), 201


@bp.delete(PARTY)
@spec.validate(resp=responses(200, ContractOut, 404, 409), tags=["parties"], operation_id="remove_party")
def remove(contract_id: int, party_id: int) -> ContractOut:
    """Remove a party from a draft"""
    return contract_out(
        remove_party(current_services().workflow, api_principal(), client_info(), contract_id, party_id)
    )


@bp.post(f"{CONTRACT}/send")
@spec.validate(resp=responses(200, ContractOut, 404, 409), tags=["contracts"], operation_id="send_contract")
def send(contract_id: int) -> ContractOut:
    """Send a draft for signing: the first parties in routing order are asked to sign"""
    workflow = current_services().workflow
    view = send_contract(workflow, api_principal(), client_info(), contract_id)
    follow_up(workflow, view)
    return contract_out(view)


@bp.post(f"{PARTY}/code")
@spec.validate(resp=responses(200, CodeSentOut, 404, 409, 429), tags=["signing"], operation_id="request_code")
def code(contract_id: int, party_id: int) -> CodeSentOut:
    """Send yourself a verification code for signing as this party

    The code is bound to you, the party and the document version in front of you.
    """
    sent = request_code(current_services().workflow, api_principal(), client_info(), contract_id, party_id)
    return code_sent_out(sent)


@bp.post(f"{PARTY}/sign")
@spec.validate(
    resp=responses(200, ContractOut, 404, 409, 422, 429), tags=["signing"], operation_id="sign_party"
)
def sign(contract_id: int, party_id: int, json: SignIn, headers: IdempotencyHeaders) -> ContractOut:
    """Sign as this party with the verification code you received

    Send an Idempotency-Key: a retry with the same key returns the first answer and never
    signs twice.
    """
    workflow = current_services().workflow
    view = sign_party(
        workflow,
        api_principal(),
        client_info(),
        contract_id,
        party_id,
        json.code,
        idempotency=idempotency_key(headers, f"sign:{contract_id}:{party_id}", json.model_dump(mode="json")),
    )
    follow_up(workflow, view)
    return contract_out(view)


@bp.post(f"{PARTY}/reject")
@spec.validate(resp=responses(200, ContractOut, 404, 409), tags=["signing"], operation_id="reject_contract")
def reject(contract_id: int, party_id: int, json: ReasonIn) -> ContractOut:
    """Refuse to sign as this party, with a reason; the contract is rejected"""
    return contract_out(
        reject_contract(
            current_services().workflow, api_principal(), client_info(), contract_id, party_id, json.reason
        )
    )


@bp.post(f"{CONTRACT}/withdraw")
@spec.validate(
    resp=responses(200, ContractOut, 404, 409), tags=["contracts"], operation_id="withdraw_contract"
)
def withdraw(contract_id: int, json: ReasonIn) -> ContractOut:
    """Withdraw a contract you sent, while it is out for signing"""
    return contract_out(
        withdraw_contract(
            current_services().workflow, api_principal(), client_info(), contract_id, json.reason
        )
    )


@bp.post(f"{CONTRACT}/remind")
@spec.validate(
    resp=responses(200, ContractOut, 404, 409, 429), tags=["contracts"], operation_id="remind_parties"
)
def remind(contract_id: int) -> ContractOut:
    """Remind the parties whose turn it is (the initiator; at most once an hour)"""
    return contract_out(
        remind_parties(current_services().workflow, api_principal(), client_info(), contract_id)
    )


@bp.post(f"{CONTRACT}/void")
@spec.validate(
    resp=responses(201, ContractOut, 404, 409, 422), tags=["contracts"], operation_id="void_contract"
)
def void(contract_id: int, json: ReasonIn) -> tuple[ContractOut, int]:
    """Start voiding a completed contract

    Answers the voiding agreement: a new contract every party of the original signs; when it
    completes, the original is voided.
    """
    view = start_voiding(
        current_services().workflow, api_principal(), client_info(), contract_id, json.reason
    )
    return contract_out(view), 201


@bp.post(f"{CONTRACT}/end")
@spec.validate(resp=responses(200, ContractOut, 404, 409), tags=["contracts"], operation_id="end_contract")
def end(contract_id: int, json: ReasonIn) -> ContractOut:
    """Terminate a completed contract (its initiator or an admin of its organisation)"""
    return contract_out(
        end_contract(current_services().workflow, api_principal(), client_info(), contract_id, json.reason)
    )


@bp.get(f"{CONTRACT}/documents/<any({DOCUMENTS}):which>")
@spec.validate(resp=responses(200, None, 404), tags=["documents"], operation_id="download_document")
def document(contract_id: int, which: str) -> BaseResponse:
    """Download the original, the current (latest signed) version or the certificate of completion

    The download is recorded in the contract's evidence.
    """
    return file_download(
        open_document(
            current_services().workflow, api_principal(), client_info(), contract_id, Document(which)
        ),
        "application/pdf",
    )


file_response("download_document", "application/pdf", "The PDF.")


@bp.get(f"{CONTRACT}/evidence")
@spec.validate(
    resp=responses(200, EvidenceListOut, 404), tags=["contracts"], operation_id="contract_evidence"
)
def evidence(contract_id: int) -> EvidenceListOut:
    """The contract's evidence: every event, chained by hash"""
    return evidence_out(contract_evidence(current_services().workflow, api_principal(), contract_id))
