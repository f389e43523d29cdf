"""Mobile access pages: each person's (address, QR code, VPN steps, their WireGuard
configuration once) and the system admin's (what the app is told, who collected their VPN
configuration). The QR codes are drawn here, server-side, as PNG data URIs."""

from __future__ import annotations

import base64

import segno
from flask import Blueprint, Flask, flash, redirect, render_template, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from appliance.errors import Conflict, NotFound
from appliance.permissions import Action, roles_for
from appliance.web.auth.forms import PlainForm
from appliance.web.auth.principal import client_info, page_principal
from appliance.web.context import current_services
from appliance.web.contracts.problems import problem_text
from appliance.workflow.mobile import collect_vpn_config, mobile_setup, my_vpn_config, vpn_handouts

bp = Blueprint("mobile_pages", __name__)


def qr_png_data_uri(text: str) -> str:
    """`text` as a QR code (error correction M, the usual quiet zone) in an <img> src."""
    return segno.make(text, error="m", micro=False).png_data_uri(scale=6, border=4)


@bp.get("/mobile")
@login_required  # type: ignore[misc]
def mobile() -> str:
    workflow, principal = current_services().workflow, page_principal()
    setup = mobile_setup(workflow, principal)
    return render_template(
        "mobile/mobile.html",
        setup=setup,
        qr=qr_png_data_uri(setup.link),
        vpn=my_vpn_config(workflow, principal),
        form=PlainForm(),
    )


@bp.post("/mobile/vpn")
@login_required  # type: ignore[misc]
def collect_vpn() -> Response | str:
    try:  # the app's CSRF protection checked the form's token before this view
        config = collect_vpn_config(current_services().workflow, page_principal(), client_info())
    except (Conflict, NotFound) as refused:
        flash(problem_text(refused), "error")
        return redirect(url_for(".mobile"), code=303)
    download = base64.b64encode(config.text.encode()).decode("ascii")
    return render_template(
        "mobile/vpn.html", config=config, qr=qr_png_data_uri(config.text), download=download
    )


@bp.get("/admin/mobile")
@login_required  # type: ignore[misc]
def admin() -> str:
    workflow, principal = current_services().workflow, page_principal()
    handouts = vpn_handouts(workflow, principal)  # refuses all but system admins
    setup = mobile_setup(workflow, principal)
    return render_template(
        "mobile/admin.html",
        setup=setup,
        qr=qr_png_data_uri(setup.link),
        handouts=handouts,
        vpn_enabled=workflow.config.mobile.wireguard_clients_dir is not None,
    )


def install_mobile_pages(app: Flask) -> None:
    """Register the pages and tell the navigation who may see the admin one."""
    app.register_blueprint(bp)
    app.context_processor(lambda: {"mobile_admin_roles": roles_for(Action.SET_UP_MOBILE_ACCESS)})
