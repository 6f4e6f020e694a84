"""`/v1/webhooks`: register, list, read and delete endpoints; the default secret; delivery attempts.

An endpoint's secret is shown once, in the answer that creates it. `default` is the pseudo-endpoint of
jobs' own `webhook_url`: its secret (the tenant's default secret) can be read at any time, since a job
names its URL without registering it, and its deliveries are listed like any endpoint's.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from api import params
from api.context import services
from api.errors import ApiError, validate_body
from api.submission import check_webhook_url, parse_json_body
from shared.webhook_store import (
    DEFAULT_ENDPOINT,
    DeliveryList,
    EndpointLimitReached,
    WebhookCreate,
    WebhookList,
    WebhookSecret,
)

bp = Blueprint("webhooks", __name__, url_prefix="/v1/webhooks")


@bp.post("")
def create_webhook() -> ResponseReturnValue:
    found = services()
    spec = validate_body(WebhookCreate, parse_json_body(request.get_data(cache=False), request.content_type))
    check_webhook_url(spec.url, found.settings, "url")
    try:
        created = found.webhooks.create(g.tenant, spec, limit=found.settings.webhook_endpoints_per_tenant)
    except EndpointLimitReached as exc:
        raise ApiError(
            409, "too_many_webhooks", f"At most {exc.args[0]} webhook endpoints per tenant; delete one first."
        ) from exc
    response = jsonify(created.model_dump(mode="json"))
    response.status_code = 201
    response.headers["Location"] = f"/v1/webhooks/{created.id}"
    return response


@bp.get("")
def list_webhooks() -> ResponseReturnValue:
    return jsonify(WebhookList(data=services().webhooks.list(g.tenant)).model_dump(mode="json"))


@bp.get("/default/secret")
def default_secret() -> ResponseReturnValue:
    return jsonify(WebhookSecret(secret=services().webhooks.default_secret(g.tenant)).model_dump(mode="json"))


@bp.get("/<endpoint_id>")
def get_webhook(endpoint_id: str) -> ResponseReturnValue:
    view = services().webhooks.get(endpoint_id, tenant=g.tenant)
    if view is None:
        raise ApiError(404, "not_found", f"No webhook endpoint {endpoint_id!r}.")
    return jsonify(view.model_dump(mode="json"))


@bp.delete("/<endpoint_id>")
def delete_webhook(endpoint_id: str) -> ResponseReturnValue:
    if not services().webhooks.delete(endpoint_id, tenant=g.tenant):
        raise ApiError(404, "not_found", f"No webhook endpoint {endpoint_id!r}.")
    return "", 204


@bp.get("/<endpoint_id>/deliveries")
@params.accepts("subject")
def list_deliveries(endpoint_id: str) -> ResponseReturnValue:
    store = services().webhooks
    if endpoint_id != DEFAULT_ENDPOINT and store.get(endpoint_id, tenant=g.tenant) is None:
        raise ApiError(404, "not_found", f"No webhook endpoint {endpoint_id!r}.")
    subject = request.args.get("subject") or None
    attempts = store.attempts(g.tenant, endpoint_id, subject=subject)
    return jsonify(DeliveryList(data=attempts).model_dump(mode="json"))
