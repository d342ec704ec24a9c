"""A real SMTP server (aiosmtpd) on 127.0.0.1 that checks AUTH and stores what it accepts.

It can be told to answer a command (MAIL, RCPT — optionally for one address — or DATA, which
is the answer after the content) with any reply, to hang there (never answer) or to drop the
connection. With a TLS context it offers STARTTLS (and then refuses AUTH before TLS, as a real
submission server does), or speaks TLS from the start (`implicit_tls=True`).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Rule:
    command: str  # MAIL | RCPT | DATA
    reply: str  # an SMTP reply line, or "hang", or "disconnect"
    address: str | None = None  # RCPT only: the recipient it applies to


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None

    @property
    def message(self):
        return message_from_bytes(self.data, policy=default_policy)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test mail server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "server.crt", tmp / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class SmtpDouble:
    def __init__(self, *, username: str | None = None, password: str | None = None,
                 tls: ssl.SSLContext | None = None, implicit_tls: bool = False, only_login: bool = False):
        self.username, self.password = username, password
        self.rules: list[Rule] = []
        self.received: list[Received] = []
        self.logins: list[tuple[str, str]] = []  # (mechanism, user) of successful logins
        self.failed_logins = 0
        self.lock = threading.Lock()
        self.port = free_port()
        kwargs = {"hostname": "127.0.0.1", "port": self.port}
        if password is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            if only_login:  # offer AUTH LOGIN alone, so that a client cannot pick PLAIN
                kwargs.update(auth_exclude_mechanism=["PLAIN"])
        if implicit_tls:
            kwargs.update(ssl_context=tls, auth_require_tls=False)
        elif tls is not None:
            kwargs.update(tls_context=tls, auth_require_tls=True)
        else:
            kwargs.update(auth_require_tls=False)  # AUTH over plain text only because this is a test
        self.controller = Controller(self, **kwargs)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()

    def on(self, command: str, reply: str, address: str | None = None) -> SmtpDouble:
        self.rules.append(Rule(command, reply, address))
        return self

    # -- aiosmtpd --------------------------------------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and mechanism in ("LOGIN", "PLAIN"):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if user == self.username and password == self.password:
                with self.lock:
                    self.logins.append((mechanism, user))
                return AuthResult(success=True, auth_data=user)
        with self.lock:
            self.failed_logins += 1
        return AuthResult(success=False, handled=False)

    def _rule(self, command: str, address: str | None = None) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.command == command and (rule.address is None or rule.address == address):
                    self.rules.remove(rule)
                    return rule
        return None

    async def _apply(self, server, rule: Rule) -> str | None:
        if rule.reply == "hang":
            await asyncio.sleep(30)  # longer than any client timeout in the tests
            return "250 OK (too late)"
        if rule.reply == "disconnect":
            server.transport.abort()
            return "421 gone"
        return rule.reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        rule = self._rule("MAIL")
        if rule is not None:
            return await self._apply(server, rule)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        rule = self._rule("RCPT", address)
        if rule is not None:
            return await self._apply(server, rule)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        login = session.auth_data if session.authenticated else None
        rule = self._rule("DATA")
        if rule is not None and rule.reply not in ("hang", "disconnect"):
            return rule.reply
        data = bytes(envelope.original_content or envelope.content)
        with self.lock:  # received: with no answer the sender cannot know it arrived
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data, login))
        if rule is not None:
            return await self._apply(server, rule)
        return "250 OK: queued"
