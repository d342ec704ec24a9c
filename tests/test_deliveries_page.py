"""The deliveries page: tabs by state with counts, channel and item filters, paging, the reasons in
words, the service's own error, actions and their refusals, roles, CSRF, times in the org's zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, update

from publisher import delivery_words, dispatch
from publisher.extensions import db
from publisher.models import Delivery, DeliveryEvent, utcnow
from publisher.web import deliveries as deliveries_page
from publisher.web import items as items_page
from tests.doubles import Answer
from tests.factories import make_channel, scheduled, set_organisation, webhook_channel
from tests.test_web_items import english_client, fresh, logged_in, settle

AT = datetime(2030, 1, 1, 6, 5, 3, tzinfo=UTC)  # 14:05:03 in Asia/Shanghai


def put(d: Delivery, status: str, reason: str | None = None, attempt: int = 1, code=None, error=None,
        **values) -> Delivery:
    """Put a delivery in a state the way dispatch leaves it: its row and its newest event."""
    db.session.execute(update(Delivery).where(Delivery.id == d.id).values(
        status=status, attempt=attempt, last_reason=reason, last_error_code=code, last_error=error, **values))
    db.session.add(DeliveryEvent(delivery_id=d.id, attempt=attempt, status=status, reason=reason or "scheduled",
                                 code=code, message=error))
    db.session.commit()
    return fresh(Delivery, d.id)


def shown(html: str) -> set[int]:
    return {int(n) for n in re.findall(r'id="delivery-(\d+)"', html)}


def tab_count(html: str, tab: str) -> int:
    return int(re.search(rf'id="tab-{tab}".*?<span class="count">(\d+)</span>', html, re.S).group(1))


@pytest.fixture
def states(app, users):
    """One delivery in each case the tabs tell apart, on two channels."""
    news, feed = make_channel("feed", name="News"), make_channel("feed", name="Board")
    later = utcnow() + timedelta(hours=1)
    made = {
        "first": scheduled([news], later, title="First try")[0],
        "rate": scheduled([news], title="Too fast")[0],
        "again": scheduled([feed], title="Editor retried")[0],
        "failed": scheduled([news], title="Refused post")[0],
        "failed2": scheduled([feed], title="Refused elsewhere")[0],
        "unconfirmed": scheduled([feed], title="No answer")[0],
        "sent": scheduled([news], title="Went out")[0],
        "cancelled": scheduled([news], later, title="Called off")[0],
    }
    put(made["rate"], "scheduled", "rate_limited", next_attempt_at=AT, code="429", error="slow down")
    put(made["again"], "scheduled", "manual")
    put(made["failed"], "failed", "permanent", code="40001", error="invalid credential")
    put(made["failed2"], "failed", "gave_up", failures=5, code="503", error="service unavailable")
    put(made["unconfirmed"], "unconfirmed", "unknown", code="timeout", error="no answer within 10 s")
    put(made["sent"], "sent", "sent", sent_at=AT)
    assert dispatch.cancel(made["cancelled"])
    db.session.commit()
    return {name: d.id for name, d in made.items()}


def test_tabs_show_each_state_with_counts(app, states):
    c = logged_in(app, "reviewer")
    expected = {
        "retrying": {states["rate"]},
        "failed": {states["failed"], states["failed2"]},
        "unconfirmed": {states["unconfirmed"]},
        "sent": {states["sent"]},
        "all": set(states.values()),
    }
    for tab, ids in expected.items():
        html = c.get(f"/deliveries?state={tab}").text
        assert shown(html) == ids, tab
        assert all(tab_count(html, t) == len(i) for t, i in expected.items()), tab
        assert 'aria-current="page"' in re.search(rf'id="tab-{tab}"[^>]*>', html).group(0), tab
    assert shown(c.get("/deliveries").text) == expected["failed"]  # the page opens on what needs a person
    assert shown(c.get("/deliveries?state=nonsense").text) == expected["failed"]
    assert 'href="/deliveries"' in c.get("/").text  # in the navigation


def test_channel_filter_and_item_search(app, states):
    c = logged_in(app, "reviewer")
    board = fresh(Delivery, states["failed2"]).channel_id
    html = c.get(f"/deliveries?state=all&channel={board}").text
    assert shown(html) == {states["again"], states["failed2"], states["unconfirmed"]}
    assert tab_count(html, "failed") == 1 and tab_count(html, "all") == 3
    assert f'value="{board}" selected' in html
    html = c.get("/deliveries?state=all&q=refused").text  # part of the title, any case
    assert shown(html) == {states["failed"], states["failed2"]} and tab_count(html, "sent") == 0
    item_id = fresh(Delivery, states["sent"]).item_id
    assert shown(c.get(f"/deliveries?state=all&q={item_id}").text) == {states["sent"]}
    assert shown(c.get("/deliveries?state=all&q=%25").text) == set()  # a wildcard is a plain character
    assert "No deliveries here." in c.get("/deliveries?state=all&q=nothing-like-this").text


def test_paged_newest_first(app, states, monkeypatch):
    monkeypatch.setattr(deliveries_page, "PER_PAGE", 3)
    c = logged_in(app, "reviewer")
    newest = sorted(states.values(), reverse=True)
    first = c.get("/deliveries?state=all").text
    assert [int(n) for n in re.findall(r'id="delivery-(\d+)"', first)] == newest[:3]
    assert "Page 1 of 3" in first and "page=2" in first and "state=all" in first
    assert [int(n) for n in re.findall(r'id="delivery-(\d+)"', c.get("/deliveries?state=all&page=3").text)] \
        == newest[6:]


def test_the_page_does_not_query_per_row(app, states):
    c = logged_in(app, "editor")

    def statements() -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert c.get("/deliveries?state=all").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    few = statements()
    channel = fresh(Delivery, states["failed"]).channel
    for d in scheduled([channel] * 10, title="Many"):
        put(d, "failed", "permanent", code="400", error="no")
    assert statements() == few


def test_words_errors_and_times_in_the_organisations_zone(app, states):
    set_organisation(timezone="Asia/Shanghai")
    c = logged_in(app, "reviewer")
    retrying = c.get("/deliveries?state=retrying").text
    assert "The channel&#39;s rate limit is reached" in retrying and "goes out at 14:05:03" in retrying
    assert "2030-01-01 14:05:03" in retrying  # the next try
    assert "<code>429</code>" in retrying and "slow down" in retrying
    failed = c.get("/deliveries?state=failed").text
    assert "The channel refused it. Check the channel&#39;s settings" in failed
    assert "<code>40001</code>" in failed and "invalid credential" in failed
    assert "we stopped after 5 tries" in failed
    assert "cannot tell whether it arrived" in c.get("/deliveries?state=unconfirmed").text
    sent = c.get("/deliveries?state=sent").text
    assert "2030-01-01 14:05:03" in sent and "The channel accepted it." in sent
    item_id = fresh(Delivery, states["sent"]).item_id
    assert f'href="/items/{item_id}"' in sent and "Went out" in sent


def test_both_pages_use_the_same_words():
    assert items_page.explain is delivery_words.explain and items_page.ACTIONS is delivery_words.ACTIONS


def test_reviewers_read_only_and_anonymous_log_in(app, states):
    c = logged_in(app, "reviewer")
    html = c.get("/deliveries?state=all").text
    assert "Retry now" not in html and "Mark as sent" not in html and "csrf_token" not in html.split("<main")[1]
    for action in ("retry", "mark-sent", "cancel"):
        assert c.post(f"/deliveries/{states['unconfirmed']}/{action}").status_code == 403
    assert c.post("/deliveries/retry-failed", data={"channel": "1"}).status_code == 403
    assert fresh(Delivery, states["unconfirmed"]).status == "unconfirmed"
    assert fresh(Delivery, states["failed"]).status == "failed"
    anonymous = english_client(app)
    for resp in (anonymous.get("/deliveries"), anonymous.post(f"/deliveries/{states['failed']}/retry")):
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_actions_and_their_refusals(app, states, role):
    c = logged_in(app, role)
    html = c.get("/deliveries?state=unconfirmed").text
    assert all(f"/deliveries/{states['unconfirmed']}/{a}" in html for a in ("retry", "mark-sent", "cancel"))
    assert "data-confirm=" in html
    back = "/deliveries?state=failed&channel=&q=Refused"
    resp = c.post(f"/deliveries/{states['failed']}/retry", data={"next": back})
    assert resp.status_code == 302 and resp.headers["Location"] == back
    assert "will be tried again now" in c.get(back).text
    assert fresh(Delivery, states["failed"]).status == "scheduled"

    resp = c.post(f"/deliveries/{states['failed']}/mark-sent", data={"next": back}, follow_redirects=True)
    assert "The delivery to News is failed by now" not in resp.text
    assert "The delivery to News is scheduled by now, so nothing was changed." in resp.text
    assert fresh(Delivery, states["failed"]).status == "scheduled"

    assert "is marked as sent" in c.post(f"/deliveries/{states['failed2']}/mark-sent", follow_redirects=True).text
    d = fresh(Delivery, states["failed2"])
    assert d.status == "sent" and d.item.status == "published"
    assert "is cancelled" in c.post(f"/deliveries/{states['unconfirmed']}/cancel", follow_redirects=True).text
    assert fresh(Delivery, states["unconfirmed"]).status == "cancelled"
    refused = c.post(f"/deliveries/{states['sent']}/cancel", follow_redirects=True).text
    assert "is sent by now, so nothing was changed" in refused and fresh(Delivery, states["sent"]).status == "sent"

    assert c.post(f"/deliveries/{states['sent']}/delete").status_code == 404
    assert c.post("/deliveries/999999/retry").status_code == 404
    # Only ever back to this page: a "next" elsewhere goes to the page itself.
    assert c.post(f"/deliveries/{states['sent']}/cancel",
                  data={"next": "https://evil.example/"}).headers["Location"] == "/deliveries"


def test_retry_all_failed_of_one_channel(app, states):
    c = logged_in(app, "editor")
    news = fresh(Delivery, states["failed"]).channel_id
    more = [put(d, "failed", "permanent", code="400", error="no")
            for d in scheduled([fresh(Delivery, states["failed"]).channel], title="Another refusal")]
    html = c.get("/deliveries?state=failed").text
    assert "Retry all failed shown" not in html and "Choose a channel to retry" in html
    html = c.get(f"/deliveries?state=failed&channel={news}").text
    assert "Retry all failed shown (2)" in html and "Retry all 2 failed deliveries to News now?" in html
    resp = c.post("/deliveries/retry-failed", data={"channel": news, "q": "",
                                                     "next": f"/deliveries?state=failed&channel={news}"},
                  follow_redirects=True)
    assert "2 failed deliveries to News will be tried again now." in resp.text
    assert {fresh(Delivery, i).status for i in (states["failed"], more[0].id)} == {"scheduled"}
    assert fresh(Delivery, states["failed2"]).status == "failed"  # another channel: untouched
    again = c.post("/deliveries/retry-failed", data={"channel": news}, follow_redirects=True).text
    assert "No failed delivery to News was left to retry." in again
    assert "Choose a channel first" in c.post("/deliveries/retry-failed", follow_redirects=True).text


def test_retry_all_failed_keeps_to_the_search(app, states):
    c = logged_in(app, "editor")
    board = fresh(Delivery, states["failed2"]).channel
    (other,) = scheduled([board], title="Something else")
    put(other, "failed", "permanent")
    c.post("/deliveries/retry-failed", data={"channel": board.id, "q": "elsewhere"})
    assert fresh(Delivery, states["failed2"]).status == "scheduled" and fresh(Delivery, other.id).status == "failed"


def test_a_real_refusal_retried_from_the_page_goes_out(app, users, drain, webhook_double):
    webhook_double.answer(Answer(400, "title must not be empty"))
    (d,) = scheduled([webhook_channel(webhook_double)], title="Hook post")
    assert settle(drain, d.id).status == "failed"
    c = logged_in(app, "editor")
    html = c.get("/deliveries?state=failed").text
    assert shown(html) == {d.id} and "<code>400</code>" in html and "title must not be empty" in html
    c.post(f"/deliveries/{d.id}/retry")
    assert settle(drain, d.id).status == "sent"
    assert shown(c.get("/deliveries?state=sent").text) == {d.id} and shown(c.get("/deliveries").text) == set()
    assert len(webhook_double.posts) == 1 and len(webhook_double.requests) == 2


def test_csrf_is_enforced(make_app):
    from publisher.models import Role
    from publisher.security import create_user

    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        create_user("editor@example.com", "password-123", Role.EDITOR)
        (d,) = scheduled([make_channel("feed", name="News")])
        d = put(d, "failed", "permanent")
        delivery_id, channel_id = d.id, d.channel_id
    c = english_client(app)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', c.get("/login").text).group(1)
    assert c.post("/login", data={"email": "editor@example.com", "password": "password-123",
                                  "csrf_token": token}).status_code == 302
    assert c.post(f"/deliveries/{delivery_id}/retry").status_code == 400
    assert c.post("/deliveries/retry-failed", data={"channel": channel_id}).status_code == 400
    with app.app_context():
        assert db.session.get(Delivery, delivery_id).status == "failed"
    page = c.get("/deliveries?state=failed").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert c.post(f"/deliveries/{delivery_id}/retry", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        assert db.session.get(Delivery, delivery_id).status == "scheduled"
