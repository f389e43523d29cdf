"""Notifications: an in-app inbox written with the change it reports, and mail sent from
that outbox after the commit; and the channels that deliver verification codes."""

from appliance.notify.channels import CodeContext, CodeSender, EmailCodeSender
from appliance.notify.delivery import DeliveryReport, deliver_due_mail
from appliance.notify.mailer import Mailer, SmtpMailer
from appliance.notify.messages import Message, render_message
from appliance.notify.outbox import InboxItem, count_unread, notify_user, open_inbox

__all__ = [
    "CodeContext",
    "CodeSender",
    "DeliveryReport",
    "EmailCodeSender",
    "InboxItem",
    "Mailer",
    "Message",
    "SmtpMailer",
    "count_unread",
    "deliver_due_mail",
    "notify_user",
    "open_inbox",
    "render_message",
]
