"""The "send a test message" button: a real message to the service, its answer in plain words."""

from __future__ import annotations

import logging

import pytest

from publisher.models import Channel
from tests.adapters.wecom_double import WeComDouble, error
from tests.conftest import login
from tests.doubles import Answer
from tests.factories import make_channel, webhook_channel
from tests.test_web_items import english_client, logged_in

KEY = "wecom-robot-key-0123456789"


@pytest.fixture
def admin(app, users):
    client = english_client(app)
    login(client, "admin@example.com")
    return client


def press(client, channel: Channel, **form) -> str:
    response = client.post(f"/channels/{channel.id}/test", data=form, follow_redirects=True)
    assert response.status_code == 200
    return response.text


def test_success_is_reported_and_the_service_got_the_message(app, admin, webhook_double):
    channel = webhook_channel(webhook_double)
    page = press(admin, channel)
    assert "Signed webhook accepted the test message." in page
    (request,) = webhook_double.requests
    assert request.json()["title"] == "Test message from My community"


@pytest.mark.parametrize(("answer", "words"), [
    (Answer(401, "bad credentials"), "refused the test message: bad credentials (code 401). Check this channel"),
    (Answer(429, "slow down", {"Retry-After": "30"}), "too many messages were sent: try again in 30 seconds"),
    (Answer(503, "maintenance"), "could not take the message now: maintenance (code 503)"),
    (Answer(200, {"ok": True}, delay=1.5), "did not answer (no answer within 1 seconds). The message may or may not"),
])
def test_each_answer_in_plain_words(app, admin, webhook_double, answer, words):
    channel = webhook_channel(webhook_double, timeout=1)
    webhook_double.answer(answer)
    assert words in press(admin, channel).replace("&#39;", "'")


def test_errors_inside_http_200_are_failures_and_the_key_never_shows(app, admin, caplog):
    caplog.set_level(logging.DEBUG)
    double = WeComDouble(KEY)
    try:
        channel = make_channel("wecom", key=KEY, base_url=double.url, timeout=2)
        double.answer(error(93000, f"invalid webhook url, hint: [{KEY}]"))
        page = press(admin, channel)
        assert "refused the test message" in page and "(code 93000)" in page
        assert KEY not in page
        assert all(KEY not in record.getMessage() for record in caplog.records)
        assert "accepted the test message" in press(admin, channel)  # then WeCom says ok
        assert len(double.requests) == 2
    finally:
        double.close()


def test_from_the_settings_page_it_comes_back_there(app, admin, webhook_double):
    channel = webhook_channel(webhook_double)
    response = admin.post(f"/channels/{channel.id}/test", data={"next": f"/channels/{channel.id}/edit"})
    assert response.headers["Location"].endswith(f"/channels/{channel.id}/edit")
    response = admin.post(f"/channels/{channel.id}/test", data={"next": "https://evil.example/"})
    assert response.headers["Location"].endswith("/channels")


def test_only_administrators_may_send(app, users, webhook_double):
    channel = webhook_channel(webhook_double)
    for role in ("editor", "reviewer"):
        assert logged_in(app, role).post(f"/channels/{channel.id}/test").status_code == 403
    assert webhook_double.requests == []
