"""Sending email over SMTP: one connection for a whole batch of messages."""

import logging
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, make_msgid, parseaddr

from api.errors import AppError
from api.settings import Settings

__all__ = [
    "MailError",
    "SmtpSender",
    "build_message",
    "send_message",
    "smtp_session",
    "text_of",
]

_log = logging.getLogger("knacka.mail")


class MailError(AppError):
    """Delivery failed; ``smtp_code`` is the server's reply code, None if it never replied.
    ``maybe_delivered``: the connection broke after the message was handed over, so the
    server may have accepted it."""

    status_code = 503

    def __init__(self, message: str, smtp_code: int | None = None, maybe_delivered: bool = False):
        super().__init__(message)
        self.smtp_code = smtp_code
        self.maybe_delivered = maybe_delivered

    @property
    def permanent(self) -> bool:
        """A 5xx reply: retrying the same message will not help."""
        return self.smtp_code is not None and 500 <= self.smtp_code < 600


def build_message(
    *,
    settings: Settings,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    inline_png: tuple[bytes, str, str] | None = None,
) -> Message:
    """A UTF-8 message: the plain text, or multipart/alternative with the HTML too, and
    beside the HTML the PNG it shows inline as (bytes, Content-ID, file name)."""
    if not (_ascii_address(to) and _ascii_address(settings.mail_from)):
        # Sent over SMTPUTF8, which smtplib only does for a message of the newer policy.
        return _international(settings, to, subject, text, html, inline_png)
    # The classic MIME classes, not the newer EmailMessage: with its header parsing and
    # quoted-printable bodies, building a nightly email took 2-3 ms; these take a tenth
    # of that, with base64 bodies every client decodes (the night's CPU fell by a quarter).
    message = body = MIMEText(text, "plain", "utf-8")
    if html is not None:
        message = MIMEMultipart("alternative")
        message.attach(body)
        shown = MIMEText(html, "html", "utf-8")
        if inline_png is not None:
            png, cid, filename = inline_png
            image = MIMEImage(png, "png")
            image["Content-ID"] = cid
            image.add_header("Content-Disposition", "inline", filename=filename)
            shown = MIMEMultipart("related", _subparts=[shown, image])
        message.attach(shown)
    message["From"] = _address(settings.mail_from)
    message["To"] = _address(to)
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    message["Message-ID"] = make_msgid(domain="knacka.invalid")
    return message


def _ascii_address(value: str) -> bool:
    return parseaddr(value)[1].isascii()


def _international(
    settings: Settings,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    inline_png: tuple[bytes, str, str] | None,
) -> EmailMessage:
    """``build_message`` for an address beyond ASCII (RFC 6531)."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="knacka.invalid")
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
        if inline_png is not None:
            png, cid, filename = inline_png
            shown = message.get_payload()[1]
            shown.add_related(png, "image", "png", cid=cid, filename=filename, disposition="inline")
    return message


def _address(value: str) -> str:
    """An address header's value; a name beyond ASCII as an encoded word (RFC 2047)."""
    if value.isascii():
        return value
    return formataddr(parseaddr(value), charset="utf-8")


def text_of(message: Message, subtype: str = "plain") -> str | None:
    """The decoded text/``subtype`` part of a message, or None when it has none."""
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    return None


class _SMTP(smtplib.SMTP):
    """Knows whether the current message reached the DATA stage, after which a lost
    connection may or may not have delivered it."""

    data_started = False

    def data(self, msg):
        self.data_started = True
        return super().data(msg)


class SmtpSender:
    """Sends messages over one SMTP connection, opened on the first message. A connection
    the server dropped (say while idle between messages) is opened again once per message;
    a refusal fails only the message it was about."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._smtp: _SMTP | None = None
        self._unreachable: str | None = None

    def _connect(self) -> _SMTP:
        s = self._settings
        smtp = _SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        try:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        """Say goodbye to the server, if it is still there."""
        if self._smtp is not None:
            with suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._drop()

    def _open(self) -> _SMTP:
        try:
            return self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            s = self._settings
            # Never the message's fault, so never permanent; the rest of the batch fails
            # at once instead of waiting out a connect timeout each.
            self._unreachable = f"could not reach {s.smtp_host}:{s.smtp_port} ({exc})"
            raise MailError(f"email: {self._unreachable}") from exc

    def send(self, message: Message) -> None:
        """Deliver one message, or raise MailError about this message only."""
        if not self._settings.smtp_host:
            body = text_of(message)
            _log.warning(
                "KNACKA_SMTP_HOST is not set; not sending this email to %s:\n%s",
                message["To"],
                body if body is not None else message.as_string(),
            )
            return
        if self._unreachable is not None:
            raise MailError(f"email: {self._unreachable}")
        to = message["To"]
        for attempt in (1, 2):
            smtp = self._smtp = self._smtp or self._open()
            smtp.data_started = False
            try:
                refused = smtp.send_message(message)
                break
            except smtplib.SMTPRecipientsRefused as exc:
                code = min(c for c, _ in exc.recipients.values())
                raise MailError(f"email: {to} was refused ({exc.recipients})", code) from exc
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421:  # the server is closing the connection
                    self._drop()
                raise MailError(
                    f"email: could not send to {to} ({exc.smtp_code} {exc.smtp_error!r})",
                    exc.smtp_code,
                ) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                if smtp.data_started:
                    raise MailError(
                        f"email: the connection broke while sending to {to} ({exc})",
                        maybe_delivered=True,
                    ) from exc
                if attempt == 2:
                    raise MailError(f"email: could not send to {to} ({exc})") from exc
        if refused:
            code = min(c for c, _ in refused.values())
            raise MailError(f"email: {to} was refused ({refused})", code)


@contextmanager
def smtp_session(settings: Settings) -> Iterator[SmtpSender]:
    """A sender for a batch of messages over one connection, closed at the end. Without
    an SMTP host (development) messages are written to the log instead."""
    sender = SmtpSender(settings)
    try:
        yield sender
    finally:
        sender.close()


def send_message(*, settings: Settings, message: Message) -> None:
    """Deliver one message on a connection of its own, or raise MailError."""
    with smtp_session(settings) as sender:
        sender.send(message)
