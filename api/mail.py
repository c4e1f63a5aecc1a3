"""Sending email over SMTP."""

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from api.errors import AppError
from api.settings import Settings

__all__ = ["MailError", "build_message", "send_message"]

_log = logging.getLogger("knacka.mail")


class MailError(AppError):
    """Delivery failed; ``smtp_code`` is the server's reply code, None if it never replied."""

    status_code = 503

    def __init__(self, message: str, smtp_code: int | None = None):
        super().__init__(message)
        self.smtp_code = smtp_code

    @property
    def permanent(self) -> bool:
        """A 5xx reply: retrying the same message will not help."""
        return self.smtp_code is not None and 500 <= self.smtp_code < 600


def build_message(
    *, settings: Settings, to: str, subject: str, text: str, html: str | None = None
) -> EmailMessage:
    """A UTF-8 message, multipart/alternative when HTML is given."""
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="knacka.invalid")
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def send_message(*, settings: Settings, message: EmailMessage) -> None:
    """Deliver one message to the configured SMTP server, or raise MailError."""
    if not settings.smtp_host:
        body = message.get_body(("plain",))
        _log.warning(
            "KNACKA_SMTP_HOST is not set; not sending this email to %s:\n%s",
            message["To"],
            body.get_content() if body else message.as_string(),
        )
        return
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code = min(c for c, _ in exc.recipients.values())
        raise MailError(f"email: {message['To']} was refused ({exc.recipients})", code) from exc
    except smtplib.SMTPResponseException as exc:
        raise MailError(
            f"email: could not send to {message['To']} ({exc.smtp_code} {exc.smtp_error!r})",
            exc.smtp_code,
        ) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"email: could not send to {message['To']} ({exc})") from exc
    if refused:
        code = min(c for c, _ in refused.values())
        raise MailError(f"email: {message['To']} was refused ({refused})", code)
