"""/api/openapi.json: a valid OpenAPI document that describes every route, and real answers match it."""

from __future__ import annotations

import copy
import re
from datetime import datetime

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from publisher import dispatch
from publisher.extensions import db
from publisher.models import Role, User, utcnow
from publisher.security import create_token
from tests.doubles import Answer
from tests.factories import later
from tests.test_api_columns import exercise_the_api as exercise_the_columns_api
from tests.test_calendar_page import exercise_the_api as exercise_the_calendar_api
from tests.test_media import exercise_the_api as exercise_the_media_api
from tests.test_queue_health import exercise_the_api as exercise_the_queue_api
from tests.test_workflow import exercise_the_api as exercise_the_workflow_api

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
BASE = "urn:publisher-api"


@pytest.fixture
def doc(client) -> dict:
    response = client.get("/api/openapi.json")  # no login: tools read it first
    assert response.status_code == 200
    return response.get_json()


def test_the_document_is_valid_openapi(doc):
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert schemes["session"]["in"] == "cookie"
    assert {"Item", "Delivery", "DeliveryEvent", "Channel", "ChannelType", "Error"} <= set(doc["components"]["schemas"])


def test_every_route_is_described_with_its_methods(app, doc):
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule == "/api/openapi.json":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    described = {path: set(ops) & HTTP_METHODS for path, ops in doc["paths"].items() if path != "/api/openapi.json"}
    assert described == routes
    assert {"/api/items", "/api/deliveries/{delivery_id}/mark-sent"} <= set(routes)  # the map was read

    parameters = doc["components"]["parameters"]
    for path, ops in doc["paths"].items():
        placeholders = set(re.findall(r"{(\w+)}", path))
        for method in set(ops) & HTTP_METHODS:
            declared = [parameters[p["$ref"].rsplit("/", 1)[1]] for p in ops[method].get("parameters", [])]
            assert {p["name"] for p in declared if p["in"] == "path"} == placeholders, (method, path)


# --- real answers against the schemas -------------------------------------------------------

def _close(node):
    """Objects that list their properties may have no others: an undocumented field fails the test."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)
    return node


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


_formats = FormatChecker(formats=())


@_formats.checks("date-time", raises=ValueError)
def _utc_with_offset(value) -> bool:
    # What the API promises: ISO 8601 in UTC with an explicit offset.
    return not isinstance(value, str) or (value.endswith("+00:00") and datetime.fromisoformat(value) is not None)


class Recorder:
    """Calls the API and checks each answer against what the document declares for it."""

    def __init__(self, client, doc: dict):
        self.client = client
        self.doc = doc
        self.registry = Registry().with_resource(BASE, Resource.from_contents(_close(copy.deepcopy(doc)),
                                                                             default_specification=DRAFT202012))
        self.seen: set[tuple[str, str, str]] = set()

    def call(self, method: str, path: str, status: int, headers: dict | None = None, query: str = "",
             **kwargs):
        params = {k: kwargs.pop(k) for k in list(kwargs) if k.endswith("_id")}
        response = self.client.open(path.format(**params) + query, method=method.upper(), headers=headers or {},
                                    **kwargs)
        assert response.status_code == status, (method, path, response.get_data(as_text=True))
        self.check(method, path, str(status), response)
        return response

    def check(self, method: str, path: str, status: str, response) -> None:
        responses = self.doc["paths"][path][method]["responses"]
        assert status in responses, f"{method.upper()} {path} answered {status}, which is not documented"
        declared = responses[status]
        where = _pointer("paths", path, method, "responses", status)
        if "$ref" in declared:
            where = declared["$ref"].lstrip("#/")
            declared = self.doc["components"]["responses"][where.rsplit("/", 1)[1]]
        if "content" not in declared:
            assert response.get_data() == b""
        else:
            schema = {"$ref": f"{BASE}#/{where}/{_pointer('content', 'application/json', 'schema')}"}
            Draft202012Validator(schema, registry=self.registry, format_checker=_formats).validate(response.get_json())
        self.seen.add((method, path, status))


def _bearer(role: Role) -> dict[str, str]:
    user = User(email=f"{role.value}@example.com", role=role, password_hash="-")
    _row, token = create_token(user, "openapi test")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_real_answers_match_the_schemas(app, client, doc, drain, webhook_double, make_app):
    api = Recorder(client, doc)
    admin, editor, reviewer = _bearer(Role.ADMIN), _bearer(Role.EDITOR), _bearer(Role.REVIEWER)

    feed = api.call("post", "/api/channels", 201, admin, json={"name": "News", "type": "feed",
                                                                "config": {"title": "News"}}).get_json()
    hook = api.call("post", "/api/channels", 201, admin, json={
        "name": "Hook", "type": "webhook",
        "config": {"url": f"{webhook_double.url}/hook", "secret": webhook_double.secret, "timeout": 2}}).get_json()
    spare = api.call("post", "/api/channels", 201, admin, json={"name": "Spare", "type": "feed"}).get_json()
    api.call("get", "/api/channels", 200, reviewer)
    api.call("get", "/api/channels/{channel_id}", 200, reviewer, channel_id=hook["id"])
    api.call("patch", "/api/channels/{channel_id}", 200, admin, channel_id=feed["id"], json={"enabled": True})
    api.call("get", "/api/channel-types", 200, reviewer)

    item = api.call("post", "/api/items", 201, editor, json={
        "title": "Hello", "body": "**hi**", "channel_ids": [feed["id"]], "due_at": utcnow().isoformat()}).get_json()
    api.call("patch", "/api/items/{item_id}", 200, editor, item_id=item["id"],
             json={"version": item["version"], "body": "**hi** again"})
    later_one = api.call("post", "/api/items/{item_id}/deliveries", 201, editor, item_id=item["id"],
                         json={"channel_ids": [feed["id"]], "due_at": later(3600).isoformat()}).get_json()["data"][0]
    webhook_double.answer(Answer(400, "refused"), Answer(400, "refused again"))
    failing = api.call("post", "/api/items", 201, editor, json={"title": "Doomed", "channel_ids": [hook["id"]]})
    failing_id = failing.get_json()["deliveries"][0]["id"]
    dispatch.tick()
    drain()
    api.call("get", "/api/items", 200, reviewer, query="?limit=1&page=1")
    api.call("get", "/api/items/{item_id}", 200, reviewer, item_id=item["id"])
    api.call("get", "/api/items/{item_id}/deliveries", 200, reviewer, item_id=item["id"])
    api.call("get", "/api/items/{item_id}/previews", 200, reviewer, item_id=item["id"])
    api.call("get", "/api/deliveries", 200, reviewer, query="?status=sent")
    api.call("get", "/api/deliveries/{delivery_id}", 200, reviewer, delivery_id=failing_id)
    api.call("post", "/api/deliveries/{delivery_id}/cancel", 200, editor, delivery_id=later_one["id"])
    api.call("post", "/api/deliveries/{delivery_id}/retry", 200, editor, delivery_id=failing_id)
    dispatch.tick()
    drain()
    api.call("post", "/api/deliveries/{delivery_id}/mark-sent", 200, editor, delivery_id=failing_id)

    draft = api.call("post", "/api/items", 201, editor, json={"title": "Draft"}).get_json()
    api.call("delete", "/api/items/{item_id}", 204, editor, item_id=draft["id"])
    api.call("delete", "/api/channels/{channel_id}", 204, admin, channel_id=spare["id"])
    exercise_the_columns_api(api, admin, editor, reviewer, feed["id"])
    exercise_the_calendar_api(api, editor, reviewer, feed["id"])
    exercise_the_workflow_api(api, editor, reviewer, feed["id"], drain)
    exercise_the_media_api(api, editor, reviewer)
    exercise_the_queue_api(api, admin, editor)
    api.call("get", "/api/openapi.json", 200)

    # The error answers.
    api.call("post", "/api/items", 400, editor, json={"title": ""})
    api.call("get", "/api/items", 400, editor, query="?limit=0")
    api.call("get", "/api/deliveries", 401)
    api.call("post", "/api/channels", 403, editor, json={"name": "x", "type": "feed"})
    api.call("get", "/api/deliveries/{delivery_id}", 404, reviewer, delivery_id=999999)
    api.call("patch", "/api/items/{item_id}", 409, editor, item_id=item["id"], json={"version": 1, "title": "x"})
    api.call("delete", "/api/channels/{channel_id}", 409, admin, channel_id=feed["id"])
    api.call("post", "/api/deliveries/{delivery_id}/cancel", 409, editor, delivery_id=failing_id)
    api.call("post", "/api/items/{item_id}/deliveries", 415, editor, item_id=item["id"], data="channel_ids=1")
    limited = Recorder(make_app(RATELIMIT_ENABLED=True, API_RATE_LIMIT="1 per minute").test_client(), doc)
    limited.call("get", "/api/channels", 200, reviewer)
    limited.call("get", "/api/channels", 429, reviewer)

    seen = api.seen | limited.seen
    operations = {(m, p) for p, ops in doc["paths"].items() for m in set(ops) & HTTP_METHODS}
    assert {(m, p) for m, p, s in seen if s.startswith("2")} == operations, "an operation was never checked"
    assert {"400", "401", "403", "404", "409", "415", "429"} <= {s for _m, _p, s in seen}
