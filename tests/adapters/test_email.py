from __future__ import annotations

import json
import socket

import pytest

from channels import mail, registry
from channels.base import Post
from channels.errors import OutcomeUnknown, Permanent, Retryable
from channels.mail import ADAPTER, Email, parse_recipients
from tests.adapters.email_double import SmtpDouble, free_port, self_signed, server_context

# The plain-text double allows AUTH without TLS on purpose (aiosmtpd warns about it).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

USER = "news@corp.example.cn"
PASSWORD = "s3cret-Passw0rd!"
SENDER = "社群周刊 <news@corp.example.cn>"
BRAND = {"intro": "周二产品夜话，每周二晚八点", "signoff": "下周见！", "hashtags": ["产品"], "color": "#c0392b",
         "cover": None}


@pytest.fixture(scope="module")
def server():
    d = SmtpDouble(username=USER, password=PASSWORD)
    yield d
    d.close()


@pytest.fixture
def smtp(server):
    with server.lock:
        server.rules.clear()
        server.received.clear()
        server.logins.clear()
        server.failed_logins = 0
    return server


def config(double, **kw) -> dict:
    values = {"host": "127.0.0.1", "port": double.port, "username": USER, "password": PASSWORD,
              "starttls": False, "sender": SENDER, "recipients": "all-staff@corp.example.cn", "timeout": 2}
    values.update(kw)
    return values


def post(**kw) -> Post:
    body = ("我们聊了 **社群** 的增长。\n\n- 一\n- 二\n\n"
            "[危险](javascript:alert(1)) <script>alert(2)</script> [官网](https://corp.example.cn/)")
    values = dict(title="社群运营的<十个>问题", body=body,
                  url="https://corp.example.cn/archive/12", brand=dict(BRAND), issue_number=12, theme="增长",
                  column="周二产品夜话", images=["https://corp.example.cn/media/cover.png"])
    values.update(kw)
    return Post(**values)


def send(double, p=None, key="delivery-1", **kw):
    ch = Email(config(double, **kw))
    return ch.send(ch.render(p or post()), idempotency_key=key)


def test_registry_finds_the_adapter():
    registry.available.cache_clear()
    assert registry.get("email") is ADAPTER


@pytest.mark.parametrize("fmt", ["article", "image", "video", "audio", "event"])
def test_render_every_format(fmt):
    extra = {"start": "2030-03-05T11:30:00+00:00", "end": "2030-03-05T13:00:00+00:00", "place": "杭州 云栖小镇",
             "online_url": "https://live.example.cn/x", "link_url": "https://video.example.cn/v/1",
             "duration_seconds": 754}
    ch = Email({"host": "h", "sender": SENDER, "recipients": "a@example.cn"})
    p = post(format=fmt, extra=extra, timezone="Asia/Shanghai")
    msg = ch.render(p)
    assert msg.payload == ch.render(p).payload  # pure and deterministic
    json.dumps(msg.payload)  # the preview shows it as JSON
    pl = msg.payload
    assert pl["subject"] == "第12期 社群运营的<十个>问题"
    text, html = pl["text"], pl["html"]
    assert msg.preview.startswith(pl["subject"]) and msg.length == len(msg.preview)
    for part in (text, html):
        assert "周二产品夜话，每周二晚八点" in part and "下周见！" in part and "增长" in part
        assert "https://corp.example.cn/archive/12" in part
    assert "阅读全文：https://corp.example.cn/archive/12" in text
    assert "**" not in text and "• 一" in text
    assert "#c0392b" in html
    assert "社群运营的&lt;十个&gt;问题" in html and "<十个>" not in html
    assert "<strong>社群</strong>" in html
    assert "href=\"javascript" not in html and "<script>" not in html
    assert 'href="https://corp.example.cn/"' in html
    if fmt == "event":
        for part in (text, html):
            assert "2030-03-05 19:30 – 2030-03-05 21:00" in part and "杭州 云栖小镇" in part
    if fmt in ("video", "audio"):
        for part in (text, html):
            assert "https://video.example.cn/v/1" in part and "12:34" in part
    if fmt == "image":
        assert "https://corp.example.cn/media/cover.png" in text


def test_render_english_and_a_bad_colour_falls_back():
    ch = Email({"host": "h", "sender": SENDER, "recipients": "a@example.cn"})
    msg = ch.render(post(locale="en", brand={"color": "red;background:url(x)"}, issue_number=None, theme=""))
    assert msg.payload["subject"] == "社群运营的<十个>问题"
    assert "Read online: https://corp.example.cn/archive/12" in msg.payload["text"]
    assert "url(x)" not in msg.payload["html"] and mail.DEFAULT_COLOR in msg.payload["html"]


def test_recipients_parsing_and_validation():
    good, bad = parse_recipients("a@example.cn, 张三 <b@example.cn>\nA@example.cn\n\nnot-an-address; c@example")
    assert good == ["a@example.cn", "b@example.cn"] and bad == ["not-an-address", "c@example"]
    errors = Email.validate_config({"host": "h", "sender": "nobody", "recipients": "x@y.cn, bad", "password": "p"})
    assert set(errors) == {"sender", "recipients", "username"}
    assert "bad" in errors["recipients"]
    assert Email.validate_config({"host": "h", "sender": SENDER, "recipients": "x@y.cn"}) == {}
    assert Email.validate_config({"host": "h", "sender": SENDER, "recipients": "x@y.cn", "port": 70000}) == {
        "port": "Enter a port between 1 and 65535."}


def test_send_multipart_with_headers(smtp):
    receipt = send(smtp, key="delivery-42")
    assert len(smtp.received) == 1
    got = smtp.received[0]
    assert got.login == USER and smtp.logins == [("PLAIN", USER)]
    assert got.mail_from == "news@corp.example.cn" and got.rcpt_tos == ["all-staff@corp.example.cn"]
    msg = got.message
    assert msg["Subject"] == "第12期 社群运营的<十个>问题"
    assert msg["From"].addresses[0].addr_spec == "news@corp.example.cn"
    assert msg["From"].addresses[0].display_name == "社群周刊"
    assert msg["To"] == "all-staff@corp.example.cn"
    assert msg["Date"].datetime is not None
    assert msg["Message-ID"] == "<delivery-42@corp.example.cn>" == receipt.remote_id
    assert msg["List-Id"].endswith(".corp.example.cn>") and "周二产品夜话" in msg["List-Id"]
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert "阅读全文：https://corp.example.cn/archive/12" in plain.get_content()
    assert "#c0392b" in html.get_content() and "<strong>社群</strong>" in html.get_content()
    assert receipt.raw == {"message_id": receipt.remote_id, "accepted": ["all-staff@corp.example.cn"], "refused": {}}
    assert PASSWORD not in repr(receipt.raw)


def test_auth_login_when_plain_is_not_offered():
    d = SmtpDouble(username=USER, password=PASSWORD, only_login=True)
    try:
        send(d)
        assert d.logins == [("LOGIN", USER)] and d.received[0].login == USER
    finally:
        d.close()


def test_several_recipients_do_not_see_each_other(smtp):
    send(smtp, recipients="a@example.cn, b@example.cn\nc@example.cn")
    got = smtp.received[0]
    assert got.rcpt_tos == ["a@example.cn", "b@example.cn", "c@example.cn"]
    assert got.message["To"].addresses[0].addr_spec == "news@corp.example.cn"
    assert b"a@example.cn" not in got.data and "Bcc" not in got.message


def test_message_id_is_stable_across_retries(smtp):
    send(smtp, key="delivery-7")
    send(smtp, key="delivery-7")
    send(smtp, key="delivery-8")
    ids = [r.message["Message-ID"] for r in smtp.received]
    assert ids[0] == ids[1] == "<delivery-7@corp.example.cn>" and ids[2] == "<delivery-8@corp.example.cn>"
    dates = [r.message["Date"] for r in smtp.received]
    assert all(dates)


def test_wrong_password_is_permanent_and_never_shown(smtp):
    with pytest.raises(Permanent) as err:
        send(smtp, password="Wrong-Passw0rd-123")
    assert err.value.code == "535"
    assert "Wrong-Passw0rd-123" not in str(err.value) and PASSWORD not in str(err.value)
    assert smtp.failed_logins >= 1 and smtp.received == []


@pytest.mark.parametrize("rules,kind,code", [
    ([("MAIL", "550 5.7.1 sender not allowed")], Permanent, "550"),
    ([("MAIL", "451 4.3.0 try later")], Retryable, "451"),
    ([("RCPT", "550 5.1.1 no such user")], Permanent, "550"),
    ([("RCPT", "452 4.2.2 mailbox full")], Retryable, "452"),
    ([("RCPT", "421 4.3.2 shutting down")], Retryable, "421"),
    ([("DATA", "451 4.3.0 local error")], Retryable, "451"),
    ([("DATA", "421 4.3.2 closing")], Retryable, "421"),
    ([("DATA", "554 5.6.0 message refused")], Permanent, "554"),
    ([("DATA", "hang")], OutcomeUnknown, "timeout"),
    ([("DATA", "disconnect")], OutcomeUnknown, "disconnected"),
    ([("RCPT", "hang")], Retryable, "timeout"),
    ([("MAIL", "disconnect")], Retryable, "disconnected"),
])
def test_answers_are_classified(smtp, rules, kind, code):
    for command, reply in rules:
        smtp.on(command, reply)
    with pytest.raises(kind) as err:
        send(smtp, timeout=0.3)
    assert type(err.value) is kind and err.value.code == code
    assert PASSWORD not in str(err.value)
    if kind is OutcomeUnknown:
        assert len(smtp.received) == 1  # it did arrive: the sender just cannot know


def test_some_recipients_refused_is_a_receipt_with_them(smtp):
    smtp.on("RCPT", "550 5.1.1 no such user", address="gone@example.cn")
    receipt = send(smtp, recipients="a@example.cn\ngone@example.cn")
    assert smtp.received[0].rcpt_tos == ["a@example.cn"]
    assert receipt.raw["accepted"] == ["a@example.cn"]
    assert receipt.raw["refused"] == {"gone@example.cn": [550, "5.1.1 no such user"]}


def test_every_recipient_refused_mixed_is_retryable(smtp):
    smtp.on("RCPT", "550 5.1.1 no such user", address="gone@example.cn")
    smtp.on("RCPT", "450 4.2.1 try later", address="busy@example.cn")
    with pytest.raises(Retryable):
        send(smtp, recipients="gone@example.cn, busy@example.cn")
    assert smtp.received == []


def test_connection_refused_is_retryable(smtp):
    with pytest.raises(Retryable) as err:
        send(smtp, port=free_port(), timeout=1)  # nobody listens there
    assert err.value.code == "connection_refused"


def test_unknown_host_is_retryable(smtp, monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(Retryable) as err:
        send(smtp, host="smtp.nowhere.invalid")
    assert err.value.code == "dns"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_smtp(certificate):
    d = SmtpDouble(username=USER, password=PASSWORD, tls=server_context(*certificate))
    yield d
    d.close()


def test_starttls_with_a_trusted_private_certificate(tls_smtp, certificate):
    pem = certificate[0].read_text()
    receipt = send(tls_smtp, starttls=True, ca_certificate=pem)
    assert receipt.remote_id and tls_smtp.received[0].login == USER


def test_starttls_refuses_an_untrusted_certificate(tls_smtp):
    with pytest.raises(Permanent) as err:
        send(tls_smtp, starttls=True)
    assert err.value.code == "certificate"
    assert tls_smtp.received == [] and tls_smtp.logins == []


def test_no_login_over_plain_text_when_the_server_wants_tls(tls_smtp):
    with pytest.raises(Permanent) as err:
        send(tls_smtp, starttls=False)
    assert err.value.code == "not_supported"
    assert PASSWORD not in str(err.value)


def test_implicit_tls(certificate, monkeypatch):
    d = SmtpDouble(username=USER, password=PASSWORD, tls=server_context(*certificate), implicit_tls=True)
    try:
        monkeypatch.setattr(mail, "IMPLICIT_TLS_PORTS", {465, d.port})
        receipt = send(d, starttls=True, ca_certificate=certificate[0].read_text())
        assert receipt.remote_id == "<delivery-1@corp.example.cn>" and d.received[0].login == USER
        with pytest.raises(Permanent) as err:
            send(d)  # the system's authorities do not know this certificate
        assert err.value.code == "certificate"
    finally:
        d.close()
