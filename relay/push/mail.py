"""``mail``: the notification as a plain-text mail, via the operator's SMTP server.

``smtplib`` is blocking, so each send runs in a worker thread (at most
``MAIL_THREADS`` at once). 4xx SMTP answers and connection trouble are retried;
a 5xx answer for the recipient fails this notification (a mailbox can come back,
so the subscription stays).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import attrs
import trio

from relay.push.base import title
from relay.push.outcome import Delivered, Failed, Outcome, Retry
from relay.store import PendingPush
from relay.timefmt import utc_text

MAIL_THREADS = 2


@attrs.frozen
class SmtpSettings:
    host: str
    port: int
    sender: str
    user: str = ""
    password: str = attrs.field(default="", repr=False)
    starttls: bool = False
    timeout: float = 15.0


def build_message(item: PendingPush, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = item.pushkeyvalue
    first_line = item.text.splitlines()[0] if item.text else ""
    message["Subject"] = f"{title(item)}: {first_line}"[:120]
    text = item.text.encode("utf-8", "replace").decode("utf-8")
    message.set_content(f"{text}\n\n-- \n{item.vehicleid}, {utc_text(int(item.created))} UTC\n")
    return message


def _deliver(settings: SmtpSettings, message: EmailMessage) -> Outcome:
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.user:
                smtp.login(settings.user, settings.password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(code >= 500 for code in codes):
            return Failed(f"SMTP recipient refused ({codes[0]})")
        return Retry(f"SMTP recipient deferred ({codes[0] if codes else '?'})")
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            return Failed(f"SMTP {exc.smtp_code}")
        return Retry(f"SMTP {exc.smtp_code}")
    except (smtplib.SMTPException, OSError) as exc:
        return Retry(f"SMTP: {type(exc).__name__}")
    return Delivered()


class MailSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._limiter = trio.CapacityLimiter(MAIL_THREADS)

    async def send(self, item: PendingPush) -> Outcome:
        message = build_message(item, self.settings.sender)
        # abandon_on_cancel: the dispatcher's attempt timeout must not wait on a stuck
        # server; the thread itself ends at smtplib's own timeout.
        outcome: Outcome = await trio.to_thread.run_sync(
            _deliver, self.settings, message, limiter=self._limiter, abandon_on_cancel=True
        )
        return outcome
