"""An organisation's seals: the kinds, the round red seal drawn for one without an image, and
disabling, enabling and retiring (never deleting) them, which every later use respects."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from appliance.errors import Conflict, Forbidden, NotFound
from appliance.models import ContractState, PartyKind, SealKind
from appliance.workflow import drafts, signatures
from appliance.workflow.drafts import NewParty
from appliance.workflow.errors import InvalidState
from appliance.workflow.seals import (
    SealState,
    create_seal,
    list_organisation_seals,
    organisation_seal,
    seal_image,
    set_seal_state,
)
from tests.workflow.conftest import CLIENT, FIELD


def test_a_seal_without_an_image_gets_the_round_red_seal(workflow_factory) -> None:
    env = workflow_factory()
    admin = env.people["orgadmin"]
    seal_id = create_seal(env.ctx, admin, CLIENT, "财务专用章", kind=SealKind.FINANCE)
    view = organisation_seal(env.ctx, admin, seal_id)
    assert (view.kind, view.state, view.certificate, view.approvers) == (
        SealKind.FINANCE,
        SealState.ACTIVE,
        None,
        (),
    )
    image = Image.open(io.BytesIO(seal_image(env.ctx, admin, seal_id)))
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (600, 600))
    assert image.getpixel((2, 2))[3] == 0  # transparent outside the ring
    ring = image.getpixel((300, 300 - 300 + 12))  # the top of the ring
    assert ring[3] == 255 and ring[0] > 200 and ring[1] < 60  # red ink
    # the organisation's name is inked along the arc: some pixels on it, none in the empty band
    arc = [
        image.getpixel((round(300 + 200 * math.cos(a)), round(300 + 200 * math.sin(a))))[3]
        for a in [math.radians(d) for d in range(-200, 21, 2)]
    ]
    assert any(alpha > 0 for alpha in arc)

    with pytest.raises(Forbidden):
        list_organisation_seals(env.ctx, env.people["keeper"])
    with pytest.raises(NotFound):  # another organisation's seal is not found, not forbidden
        organisation_seal(env.ctx, env.people["mallory"], seal_id)
    names = [s.name for s in list_organisation_seals(env.ctx, admin)]
    assert set(names) == {"合同专用章", "财务专用章"}


def test_a_disabled_seal_is_not_offered_or_applied_and_a_retired_one_stays_retired(workflow_factory) -> None:
    env = workflow_factory()
    admin, initiator, keeper = env.people["orgadmin"], env.people["initiator"], env.people["keeper"]
    in_flight = env.start([("seal", 1)])
    assert set_seal_state(env.ctx, admin, CLIENT, env.seal_id, SealState.DISABLED).state is SealState.DISABLED

    assert env.seal_id not in {s.id for s in drafts.list_seals(env.ctx, initiator)}
    draft = env.start([], send=False)
    with pytest.raises(NotFound):
        drafts.add_party(
            env.ctx, initiator, CLIENT, draft.id, NewParty(PartyKind.SEAL, (FIELD,), seal_id=env.seal_id)
        )
    with pytest.raises(InvalidState, match="no longer in use"):
        signatures.request_code(env.ctx, keeper, CLIENT, in_flight.id, in_flight.parties[0].id)

    assert set_seal_state(env.ctx, admin, CLIENT, env.seal_id, SealState.ACTIVE).state is SealState.ACTIVE
    signed = env.sign("keeper", in_flight.id, in_flight.parties[0].id)
    assert signed.state is ContractState.COMPLETED

    retired = set_seal_state(env.ctx, admin, CLIENT, env.seal_id, SealState.RETIRED)
    assert retired.state is SealState.RETIRED
    with pytest.raises(Conflict, match="retired for good"):
        set_seal_state(env.ctx, admin, CLIENT, env.seal_id, SealState.ACTIVE)
    with pytest.raises(Forbidden):
        set_seal_state(env.ctx, keeper, CLIENT, env.seal_id, SealState.ACTIVE)
    assert [s.state for s in list_organisation_seals(env.ctx, admin)] == [SealState.RETIRED]
