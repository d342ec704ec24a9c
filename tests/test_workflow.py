"""The approval workflow: rules per role and per state, with approval on and off; nothing goes out
unapproved; edits after approval go back to review; republishing is explicit; the item history."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from publisher import dispatch, workflow
from publisher.extensions import db
from publisher.items import Conflict, Invalid
from publisher.models import Delivery, Item, ItemEvent, utcnow
from tests.conftest import login
from tests.factories import make_channel, make_item, set_organisation, webhook_channel
from tests.test_web_items import fresh, logged_in, settle


@pytest.fixture
def approval(app):
    return set_organisation(require_approval=True)


def _planned(channels, due_at=None, **fields) -> Item:
    item = make_item(**fields)
    dispatch.schedule(item, channels, due_at or utcnow())
    db.session.commit()
    return item


def _events(item_id: int) -> list[str]:
    db.session.expire_all()
    return [e.action for e in db.session.scalars(select(ItemEvent).where(ItemEvent.item_id == item_id)
                                                 .order_by(ItemEvent.id))]


# --- the rules ---------------------------------------------------------------------------------------

def test_nothing_is_claimed_before_approval(app, users, approval):
    item = _planned([make_channel("feed")])
    assert item.status == "draft"
    assert dispatch.claim_due() == []
    workflow.submit(item, users["editor"])
    db.session.commit()
    assert dispatch.claim_due() == []  # in review, and due: still held
    workflow.approve(item, users["reviewer"], "fine")
    db.session.commit()
    assert fresh(Item, item.id).status == "scheduled"
    assert [i for i, _a in dispatch.claim_due()] == [item.deliveries[0].id]


def test_approving_without_deliveries_leaves_it_approved_then_planning_schedules_it(app, users, approval):
    item = make_item()
    workflow.submit(item, users["editor"])
    workflow.approve(item, users["admin"])
    db.session.commit()
    assert item.status == "approved" and item.reviewed_by_id == users["admin"].id
    workflow.plan(item, [make_channel("feed").id], None, users["editor"])
    db.session.commit()
    assert fresh(Item, item.id).status == "scheduled" and len(dispatch.claim_due()) == 1


@pytest.mark.parametrize("role, allowed", [("editor", False), ("reviewer", True), ("admin", True)])
def test_only_reviewers_and_admins_approve_or_send_back(app, users, approval, role, allowed):
    for run in (lambda i, u: workflow.approve(i, u), lambda i, u: workflow.send_back(i, u, "why")):
        item = make_item(status="in_review")
        if allowed:
            run(item, users[role])
            assert item.status in ("approved", "draft")
        else:
            with pytest.raises(workflow.NotAllowed):
                run(item, users[role])
            assert item.status == "in_review"
        db.session.rollback()


def test_reviewers_do_not_write(app, users, approval):
    item = make_item()
    for run in (lambda: workflow.submit(item, users["reviewer"]),
                lambda: workflow.plan(item, [1], None, users["reviewer"]),
                lambda: workflow.edit(item, {"title": "x"}, users["reviewer"])):
        with pytest.raises(workflow.NotAllowed):
            run()


@pytest.mark.parametrize("status", ["draft", "approved", "scheduled", "published"])
def test_only_an_item_in_review_can_be_approved_or_sent_back(app, users, approval, status):
    item = make_item(status=status)
    with pytest.raises(Conflict, match="Only an item in review can be approved"):
        workflow.approve(item, users["reviewer"])
    with pytest.raises(Conflict, match="Only an item in review can be sent back"):
        workflow.send_back(item, users["reviewer"], "no")
    assert item.status == status


@pytest.mark.parametrize("status", ["in_review", "approved", "scheduled", "published"])
def test_only_a_draft_can_be_submitted(app, users, status):
    item = make_item(status=status)
    with pytest.raises(Conflict, match="Only a draft can be submitted"):
        workflow.submit(item, users["editor"])


def test_send_back_needs_a_comment_and_the_author_sees_it(app, users, approval):
    item = make_item(status="in_review", author=users["editor"])
    with pytest.raises(Invalid) as refused:
        workflow.send_back(item, users["reviewer"], "   ")
    assert "comment" in refused.value.errors and item.status == "in_review"
    workflow.send_back(item, users["reviewer"], "The second paragraph needs a source.")
    db.session.commit()
    c = logged_in(app, "editor")
    page = c.get(f"/items/{item.id}").text
    assert 'id="review-comment"' in page and "The second paragraph needs a source." in page
    assert "Submit for review" in page


def test_without_approval_editors_schedule_directly(app, users):
    item = _planned([make_channel("feed")])
    assert item.status == "scheduled" and len(dispatch.claim_due()) == 1


def test_editing_an_approved_item_sends_it_back_to_review_and_holds_its_deliveries(app, users, approval):
    item = _planned([make_channel("feed")], utcnow() + timedelta(seconds=1))
    workflow.submit(item, users["editor"])
    workflow.approve(item, users["reviewer"])
    db.session.commit()
    assert item.status == "scheduled"
    c = logged_in(app, "editor")
    page = c.get(f"/items/{item.id}/edit").text
    assert 'id="back-to-review"' in page and "goes back to review" in page
    form = {"title": "A new title", "body": item.body, "origin": "pgc", "format": "article", "version": item.version}
    resp = c.post(f"/items/{item.id}/edit", data=form, follow_redirects=True)
    assert "back in review" in resp.text
    item = fresh(Item, item.id)
    assert item.status == "in_review" and item.title == "A new title"
    assert dispatch.claim_due(utcnow() + timedelta(seconds=5)) == []  # due, but held
    assert item.deliveries[0].status == "scheduled"
    assert _events(item.id)[-2:] == ["edited", "back_to_review"]
    reviewer = logged_in(app, "reviewer")
    assert reviewer.post(f"/items/{item.id}/approve", data={"comment": ""}).status_code == 302
    assert fresh(Item, item.id).status == "scheduled"
    assert len(dispatch.claim_due(utcnow() + timedelta(seconds=5))) == 1


def test_a_change_outside_the_content_keeps_the_approval(app, users, approval):
    item = _planned([make_channel("feed")], utcnow() + timedelta(hours=1), status="approved")
    assert item.status == "scheduled"
    workflow.edit(item, {"theme": "Spring"}, users["editor"])
    db.session.commit()
    assert fresh(Item, item.id).status == "scheduled"


def test_republish_creates_new_deliveries_and_editing_never_does(app, users, drain, webhook_double):
    hook = webhook_channel(webhook_double, name="Hook")
    item = _planned([hook])
    assert settle(drain, item.deliveries[0].id).status == "sent"
    item = fresh(Item, item.id)
    assert item.status == "published"
    workflow.edit(item, {"title": "Corrected", "body": "new"}, users["editor"])
    db.session.commit()
    dispatch.tick()
    drain()
    assert len(webhook_double.requests) == 1
    assert db.session.scalar(select(func.count(Delivery.id))) == 1
    with pytest.raises(Conflict, match="Only a published item can be republished"):
        workflow.republish(make_item(), [hook.id], None, users["editor"])
    c = logged_in(app, "editor")
    assert "Republish to" in c.get(f"/items/{item.id}").text
    assert c.post(f"/items/{item.id}/republish", data={"channel_ids": str(hook.id), "when": "now"}).status_code == 302
    (first, again) = fresh(Item, item.id).deliveries
    assert settle(drain, again.id).status == "sent"
    assert [r.json()["title"] for r in webhook_double.requests] == ["第12期：社群运营", "Corrected"]
    assert _events(item.id)[-1] == "republished"


def test_history_records_who_changed_what(app, users, approval):
    c = logged_in(app, "editor")
    resp = c.post("/items/new", data={"title": "First", "body": "one", "origin": "pgc", "format": "article",
                                      "when": "now"})
    item_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    item = fresh(Item, item_id)
    form = {"title": "Second", "body": "one", "origin": "ugc", "format": "article", "version": item.version,
            "planned_at": "2031-03-01T20:00"}
    assert c.post(f"/items/{item_id}/edit", data=form).status_code == 302
    assert c.post(f"/items/{item_id}/submit").status_code == 302
    reviewer = logged_in(app, "reviewer")
    assert reviewer.post(f"/items/{item_id}/send-back", data={"comment": ""}).status_code == 400
    assert reviewer.post(f"/items/{item_id}/send-back", data={"comment": "Add a photo"}).status_code == 302
    db.session.expire_all()
    events = list(db.session.scalars(select(ItemEvent).where(ItemEvent.item_id == item_id).order_by(ItemEvent.id)))
    assert [e.action for e in events] == ["created", "edited", "submitted", "sent_back"]
    assert workflow.event_changes(events[1]) == {
        "title": ["First", "Second"], "origin": ["pgc", "ugc"], "planned_at": [None, "2031-03-01T12:00:00+00:00"]}
    assert events[1].user_id == users["editor"].id and events[3].comment == "Add a photo"
    page = c.get(f"/items/{item_id}").text
    # Times in the organisation's zone (Asia/Shanghai): 12:00 UTC is 20:00 there.
    assert "Planned time</strong>: — → 2031-03-01 20:00" in page and "Add a photo" in page


# --- the pages and the API ---------------------------------------------------------------------------

def test_pages_enforce_roles(app, users, approval):
    item = make_item(status="in_review")
    editor = logged_in(app, "editor")
    assert editor.post(f"/items/{item.id}/approve").status_code == 403
    assert editor.post(f"/items/{item.id}/send-back", data={"comment": "x"}).status_code == 403
    reviewer = logged_in(app, "reviewer")
    assert reviewer.post(f"/items/{item.id}/submit").status_code == 403
    assert reviewer.post(f"/items/{item.id}/republish", data={"when": "now"}).status_code == 403
    page = reviewer.get(f"/items/{item.id}").text
    assert "Approve" in page and "Send back" in page
    assert "Approve" not in editor.get(f"/items/{item.id}").text.split('id="workflow"')[1].split("</section>")[0]
    resp = editor.post(f"/items/{item.id}/submit", follow_redirects=True)
    assert "Only a draft can be submitted for review; this item is in review." in resp.text
    assert fresh(Item, item.id).status == "in_review"


def test_api_workflow(app, client, users, approval):
    login(client, "editor@example.com")
    feed = make_channel("feed")
    resp = client.post("/api/items", json={"title": "Via API", "channel_ids": [feed.id]})
    item = resp.json
    assert resp.status_code == 201 and item["status"] == "draft" and item["review"]["comment"] == ""
    assert client.post(f"/api/items/{item['id']}/approve").status_code == 403
    assert client.post(f"/api/items/{item['id']}/submit").json["status"] == "in_review"
    assert client.post(f"/api/items/{item['id']}/submit").status_code == 409
    client = logged_in(app, "reviewer")
    resp = client.post(f"/api/items/{item['id']}/send-back", json={})
    assert resp.status_code == 400 and "comment" in resp.json["error"]["fields"]
    resp = client.post(f"/api/items/{item['id']}/approve", json={"comment": "ok"})
    assert resp.status_code == 200 and resp.json["status"] == "scheduled"
    assert resp.json["review"] == {"reviewed_by_id": users["reviewer"].id, "reviewed_at": resp.json["review"][
        "reviewed_at"], "comment": "ok"}
    history = client.get(f"/api/items/{item['id']}/history").json["data"]
    assert [e["action"] for e in history] == ["created", "scheduled", "submitted", "approved"]
    assert client.post(f"/api/items/{item['id']}/republish", json={"channel_ids": [feed.id]}).status_code == 403
    editor = logged_in(app, "editor")
    resp = editor.post(f"/api/items/{item['id']}/republish", json={"channel_ids": [feed.id]})
    assert resp.status_code == 409 and "Only a published item" in resp.json["error"]["message"]


def exercise_the_api(api, editor: dict, reviewer: dict, channel_id: int, drain) -> None:
    """Every workflow operation's success through tests/test_openapi.py's Recorder (schemas checked)."""
    item = api.call("post", "/api/items", 201, editor, json={"title": "Reviewed"}).get_json()
    api.call("post", "/api/items/{item_id}/submit", 200, editor, item_id=item["id"])
    api.call("post", "/api/items/{item_id}/send-back", 200, reviewer, item_id=item["id"], json={"comment": "More"})
    api.call("post", "/api/items/{item_id}/submit", 200, editor, item_id=item["id"])
    api.call("post", "/api/items/{item_id}/approve", 200, reviewer, item_id=item["id"], json={"comment": "Good"})
    api.call("post", "/api/items/{item_id}/deliveries", 201, editor, item_id=item["id"],
             json={"channel_ids": [channel_id]})
    dispatch.tick()
    drain()
    api.call("post", "/api/items/{item_id}/republish", 201, editor, item_id=item["id"],
             json={"channel_ids": [channel_id]})
    api.call("get", "/api/items/{item_id}/history", 200, reviewer, item_id=item["id"])


def test_admins_switch_approval_on_and_off(app, users):
    from publisher.models import Organisation

    admin = logged_in(app, "admin")
    form = {"name": "Club", "timezone": "Asia/Shanghai", "locale": "en"}
    assert admin.post("/settings", data={**form, "require_approval": "y"}).status_code == 302
    assert fresh(Organisation, 1).require_approval is True
    page = admin.get("/settings").text
    assert re.search(r'<input checked[^>]*name="require_approval"', page)
    assert admin.post("/settings", data=form).status_code == 302
    assert fresh(Organisation, 1).require_approval is False
