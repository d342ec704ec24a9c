"""E-mail (type "email"): one message per post through the organisation's own SMTP server.

The module is called `mail`, not `email`: a file named email.py in this folder would hide the
standard library's `email` package from any program that puts this folder itself on its path
(running a file from inside it, some editors' script mode), and smtplib needs that package.

What goes out: a multipart/alternative message (text/plain and text/html, both UTF-8, base64) with
Subject = issue label + title, From = `sender`, Date, List-Id (by column) and a Message-ID made from
the delivery's idempotency key, `<key@sender's domain>`. Every attempt of one delivery carries the
same Message-ID, so a receiver or a list manager that drops repeats by Message-ID drops a retry;
SMTP itself has no such guarantee, so the channel is not idempotent.

Recipients: with one address (typically a mailing list such as all-staff@…) it is the To header;
with several, To is the sender and the recipients are only in the envelope (like Bcc), so nobody
sees everybody's address.

Security: port 465 (and 994, NetEase's second SMTPS port) is implicit TLS (SMTPS); any other
port upgrades with STARTTLS unless `starttls` is switched off. Certificates are always verified,
against the system's trusted authorities or, for a mail server with a private certificate,
against the PEM given in `ca_certificate`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, getaddresses, parseaddr

import nh3
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from . import markup, templating
from .base import Channel, Field, Limits, Message, Post, Receipt
from .errors import ChannelError, OutcomeUnknown, Permanent, Retryable

IMPLICIT_TLS_PORTS = {465, 994}
DEFAULT_COLOR = "#1f6feb"
ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
HTML_TAGS = {"p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a", "hr",
             "h1", "h2", "h3", "h4", "h5", "h6", "img"}


def parse_recipients(text: str) -> tuple[list[str], list[str]]:
    """The addresses in `text` (one a line or comma-separated, "Name <addr>" allowed) and the
    entries that are not addresses."""
    entries = [e.strip() for e in re.split(r"[\n,;]+", text or "") if e.strip()]
    good, bad = [], []
    for entry in entries:
        parsed = getaddresses([entry])
        addr = parsed[0][1] if len(parsed) == 1 else ""
        if addr and ADDRESS.match(addr):
            if addr.lower() not in (g.lower() for g in good):
                good.append(addr)
        else:
            bad.append(entry)
    return good, bad


def sender_address(sender: str) -> str:
    addr = parseaddr(sender or "")[1]
    return addr if ADDRESS.match(addr or "") else ""


class Email(Channel):
    type = "email"
    label = _l("E-mail (SMTP)")
    idempotent = False
    fields = (
        Field("host", _l("SMTP server")),
        Field("port", _l("Port"), required=False, kind="integer", default=587,
              help=_l("587 with STARTTLS is usual; 465 means TLS from the start (SMTPS).")),
        Field("username", _l("User name"), required=False),
        Field("password", _l("Password"), secret=True, required=False),
        Field("starttls", _l("Use STARTTLS"), required=False, kind="boolean", default=True,
              help=_l("Switch off only for a relay inside your own network; port 465 always uses TLS.")),
        Field("sender", _l("From"), help=_l("An address, optionally with a name: 社群周刊 <news@example.cn>")),
        Field("recipients", _l("Recipients"), kind="text",
              help=_l("One address a line, or separated by commas. With several, they do not see each other.")),
        Field("ca_certificate", _l("Trusted certificate (PEM)"), required=False, kind="text",
              help=_l("Only for a mail server whose certificate is not from a public authority.")),
        Field("timeout", _l("Timeout (seconds)"), required=False, kind="integer", default=20),
    )
    limits = Limits(markup="html", rate_limit=None)
    default_timeout = 20.0

    @classmethod
    def validate_config(cls, config: dict) -> dict[str, str]:
        errors = super().validate_config(config)
        if config.get("sender") and not sender_address(str(config["sender"])):
            errors["sender"] = _("Enter an address like news@example.cn or 社群周刊 <news@example.cn>.")
        if config.get("recipients"):
            good, bad = parse_recipients(str(config["recipients"]))
            if bad:
                errors["recipients"] = _("Not an e-mail address: %(addresses)s", addresses=", ".join(bad[:5]))
            elif not good:
                errors["recipients"] = "required"
        port = config.get("port")
        if port not in (None, "") and not (isinstance(port, int) and 0 < port < 65536):
            errors["port"] = _("Enter a port between 1 and 65535.")
        if config.get("password") and not config.get("username"):
            errors["username"] = _("A password needs a user name.")
        return errors

    # -- configuration -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.config.get("port") or 587)

    @property
    def recipients(self) -> list[str]:
        return parse_recipients(str(self.config.get("recipients") or ""))[0]

    @property
    def sender(self) -> str:
        return str(self.config.get("sender") or "").strip()

    @property
    def domain(self) -> str:
        addr = sender_address(self.sender)
        return addr.rpartition("@")[2].lower() if addr else "localhost"

    def max_send_seconds(self) -> float:
        # connect, greeting, EHLO, STARTTLS, EHLO, AUTH, MAIL, one RCPT each, DATA, content, QUIT
        return self.timeout * (10 + len(self.recipients))

    # -- render --------------------------------------------------------------------------------
    def render(self, post: Post) -> Message:
        issue = templating.issue_label(post)
        subject = " ".join(part for part in (issue, post.title) if part)
        color = (post.brand or {}).get("color") or ""
        color = color if COLOR.match(color) else DEFAULT_COLOR
        body_html = nh3.clean(markup.html(post.body), tags=HTML_TAGS, url_schemes={"http", "https", "mailto"},
                              attributes={"a": {"href", "title"}, "img": {"src", "alt", "title"}},
                              link_rel="noopener noreferrer")
        context = {"subject": subject, "color": color, "zh": post.locale.startswith("zh")}
        text = templating.render("email", post, "txt", body=markup.plain(post.body), **context)
        html = templating.render("email", post, "html", body=Markup(body_html), **context)  # noqa: S704 (cleaned by nh3)
        recipients = self.recipients
        to = recipients if len(recipients) == 1 else [self.sender]
        headers = {"List-Id": _list_id(post.column, self.domain)}
        payload = {"subject": subject, "from": self.sender, "to": to, "recipients": recipients,
                   "headers": headers, "text": text, "html": html}
        preview = f"{subject}\n\n{text}"
        return Message(payload=payload, preview=preview, length=len(preview))

    # -- send ----------------------------------------------------------------------------------
    def message_id(self, idempotency_key: str) -> str:
        left = re.sub(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]", "-", idempotency_key).strip(".") or "delivery"
        return f"<{left}@{self.domain}>"

    def build(self, message: Message, *, idempotency_key: str) -> EmailMessage:
        p = message.payload
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["Subject"] = p["subject"]
        msg["From"] = p["from"]
        msg["To"] = ", ".join(p["to"])
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = self.message_id(idempotency_key)
        for name, value in p.get("headers", {}).items():
            msg[name] = value
        msg.set_content(p["text"], charset="utf-8", cte="base64")
        msg.add_alternative(p["html"], subtype="html", charset="utf-8", cte="base64")
        return msg

    def tls_context(self) -> ssl.SSLContext:
        pem = str(self.config.get("ca_certificate") or "").strip()
        try:
            return ssl.create_default_context(cadata=pem) if pem else ssl.create_default_context()
        except ssl.SSLError as exc:
            raise Permanent("the trusted certificate is not a valid PEM certificate", code="ca_certificate") from exc

    def send(self, message: Message, *, idempotency_key: str) -> Receipt:
        recipients = list(message.payload["recipients"])
        if not recipients:
            raise Permanent("no recipients are configured", code="no_recipients")
        msg = self.build(message, idempotency_key=idempotency_key)
        message_id = msg["Message-ID"]
        data = _dot_stuffed(msg.as_bytes())
        session = _Session(self, recipients)
        try:
            refused = session.deliver(sender_address(self.sender) or self.sender, data)
        except ChannelError as exc:
            exc.message = self._scrub(exc.message)
            raise
        accepted = [r for r in recipients if r not in refused]
        raw = {"message_id": message_id, "accepted": accepted,
               "refused": {addr: [code, self._scrub(text)] for addr, (code, text) in refused.items()}}
        return Receipt(remote_id=message_id, url=None, raw=raw)

    def _scrub(self, text: str) -> str:
        password = str(self.config.get("password") or "")
        return text.replace(password, "***") if len(password) >= 3 else text


class _Session:
    """One SMTP conversation, keeping track of how far it got: a failure once the content has
    been sent may have delivered the mail; a failure before it cannot have."""

    def __init__(self, channel: Email, recipients: list[str]):
        self.channel = channel
        self.recipients = recipients
        self.phase = "connect"
        self.smtp: smtplib.SMTP | None = None

    def deliver(self, envelope_from: str, data: bytes) -> dict[str, tuple[int, str]]:
        ch = self.channel
        try:
            return self._converse(envelope_from, data)
        except ssl.SSLCertVerificationError as exc:
            raise Permanent(f"the mail server's certificate is not trusted ({exc.verify_message}); add its "
                            "certificate under 'Trusted certificate' if it is a private one",
                            code="certificate") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise Permanent(f"the mail server refused the user name or password: {_reply(exc)}",
                            code=exc.smtp_code) from None
        except smtplib.SMTPNotSupportedError as exc:
            what = "STARTTLS" if self.phase == "tls" else "login (AUTH)"
            hint = " before TLS; keep STARTTLS on" if self.phase == "auth" and not self._tls() else ""
            raise Permanent(f"the mail server does not offer {what}{hint}", code="not_supported") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise _all_refused(exc.recipients) from None
        except smtplib.SMTPResponseException as exc:  # sender refused, connect/HELO/DATA errors …
            code = exc.smtp_code
            where = {"envelope": "the sender was refused", "data": "DATA was refused",
                     "content": "the message was refused"}.get(self.phase, f"the server refused ({self.phase})")
            error = Retryable if 400 <= code < 500 or code == -1 else Permanent
            raise error(f"{where}: {_reply(exc)}", code=code) from None
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib wraps a read timeout
                raise self._broken(f"no answer within {ch.timeout:g} seconds", code="timeout") from None
            raise self._broken(str(exc)[:200]) from None
        except socket.gaierror as exc:
            raise Retryable(f"the mail server's name {ch.config.get('host')} could not be resolved",
                            code="dns") from exc
        except (TimeoutError, OSError) as exc:
            if self.phase == "connect" and isinstance(exc, ConnectionRefusedError):
                raise Retryable("the mail server refused the connection", code="connection_refused") from exc
            if isinstance(exc, TimeoutError):
                raise self._broken(f"no answer within {ch.timeout:g} seconds", code="timeout") from exc
            raise self._broken(f"connection error: {type(exc).__name__}") from exc
        except smtplib.SMTPException as exc:  # e.g. "No suitable authentication method found."
            raise Permanent(str(exc)[:200], code="smtp") from None
        finally:
            self._close()

    def _tls(self) -> bool:
        ch = self.channel
        return ch.port in IMPLICIT_TLS_PORTS or ch.config.get("starttls", True) is not False

    def _broken(self, what: str, code: str = "disconnected") -> ChannelError:
        if self.phase == "content":
            return OutcomeUnknown(f"the connection ended after the message was sent and before the server "
                                  f"confirmed it ({what}); it may have been delivered", code=code)
        if self.phase == "connect":
            return Retryable(f"the mail server could not be reached ({what})", code=code)
        return Retryable(f"the connection ended before the message was sent ({what}, during {self.phase})",
                         code=code)

    def _converse(self, envelope_from: str, data: bytes) -> dict[str, tuple[int, str]]:
        ch = self.channel
        host = str(ch.config["host"]).strip()
        implicit = ch.port in IMPLICIT_TLS_PORTS
        context = ch.tls_context() if self._tls() else None
        # Connects and reads the greeting (SMTPConnectError unless 220); the host given here is
        # also the name the certificate is checked against.
        if implicit:
            self.smtp = smtplib.SMTP_SSL(host, ch.port, timeout=ch.timeout, context=context)
        else:
            self.smtp = smtplib.SMTP(host, ch.port, timeout=ch.timeout)
        smtp = self.smtp
        self.phase = "hello"
        smtp.ehlo_or_helo_if_needed()
        if not implicit and context is not None:
            self.phase = "tls"
            smtp.starttls(context=context)
            smtp.ehlo()
        if ch.config.get("username"):
            self.phase = "auth"
            smtp.login(str(ch.config["username"]), str(ch.config.get("password") or ""))
        self.phase = "envelope"
        code, reply = smtp.mail(envelope_from)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, envelope_from)
        refused: dict[str, tuple[int, str]] = {}
        for rcpt in self.recipients:
            code, reply = smtp.rcpt(rcpt)
            if code == 421:  # the server is closing the connection
                raise smtplib.SMTPResponseException(code, reply)
            if code not in (250, 251):
                refused[rcpt] = (code, _text(reply))
        if len(refused) == len(self.recipients):
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.rset()
            raise smtplib.SMTPRecipientsRefused(refused)
        self.phase = "data"
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        self.phase = "content"
        smtp.send(data + b".\r\n")
        code, reply = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        self.phase = "done"
        return refused

    def _close(self) -> None:
        if self.smtp is None:
            return
        try:
            if self.phase == "done":
                self.smtp.quit()
            else:
                self.smtp.close()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:300]


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def _all_refused(refused: dict) -> ChannelError:
    listed = "; ".join(f"{addr}: {code} {_text(text)}" for addr, (code, text) in list(refused.items())[:5])
    codes = [code for code, _ in refused.values()]
    if any(400 <= code < 500 for code in codes):
        return Retryable(f"every recipient was refused, some for now: {listed}", code=min(codes))
    return Permanent(f"every recipient was refused: {listed}", code=codes[0] if codes else None)


def _dot_stuffed(data: bytes) -> bytes:
    """The message as SMTP's DATA wants it: CRLF line ends, a leading dot doubled, ending in CRLF."""
    data = re.sub(rb"\r?\n", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _list_id(column: str, domain: str) -> str:
    """`Column name <slug.domain>`: an ASCII slug of the column's name, or a short hash of it."""
    slug = re.sub(r"[^a-z0-9]+", "-", (column or "").lower()).strip("-")
    if not (column and column.isascii() and slug):
        slug = "column-" + hashlib.sha256((column or "all").encode()).hexdigest()[:10]
    name = re.sub(r'[<>"\\]', "", column or "") or "publisher"
    return f"{name} <{slug}.{domain}>"


ADAPTER = Email
