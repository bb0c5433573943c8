"""Webhook signatures and e-mail identity: what lets a receiver trust a delivery and recognise a
resend."""

from __future__ import annotations

import hashlib
import hmac

from ticketing.workers.notify.senders import (
    build_email,
    message_id,
    sign,
    verify_signature,
    webhook_body,
)

SECRET = "whsec-test"
BODY = b'{"delivery":"webhook:crm:t:1","event":{"type":"TicketOpened"}}'


def test_a_signature_is_the_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1764000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1764000000", BODY) == f"sha256={expected}"


def test_a_signed_body_verifies() -> None:
    header = sign(SECRET, "1764000000", BODY)
    assert verify_signature(SECRET, "1764000000", BODY, header)
    assert verify_signature(SECRET.encode(), "1764000000", BODY, header)


def test_a_changed_body_timestamp_or_secret_does_not_verify() -> None:
    header = sign(SECRET, "1764000000", BODY)
    assert not verify_signature(SECRET, "1764000000", BODY + b" ", header)
    assert not verify_signature(SECRET, "1764000001", BODY, header)
    assert not verify_signature("other", "1764000000", BODY, header)
    assert not verify_signature(SECRET, "1764000000", BODY, None)
    assert not verify_signature(SECRET, "1764000000", BODY, header.removeprefix("sha256="))


def test_an_old_timestamp_is_refused_when_the_receiver_sets_a_tolerance() -> None:
    header = sign(SECRET, "1764000000", BODY)
    assert verify_signature(SECRET, "1764000000", BODY, header, tolerance_s=300, now=1764000100)
    assert not verify_signature(SECRET, "1764000000", BODY, header, tolerance_s=300, now=1764000400)
    assert not verify_signature(SECRET, "soon", BODY, sign(SECRET, "soon", BODY), tolerance_s=5)


def test_the_webhook_body_carries_its_delivery_id_in_a_stable_form() -> None:
    body = webhook_body("webhook:crm:t:1", {"webhook": "crm", "event": {"b": 1, "a": 2}})
    assert body == b'{"delivery":"webhook:crm:t:1","event":{"a":2,"b":1},"webhook":"crm"}'


def test_an_e_mails_message_id_comes_from_its_outbox_key() -> None:
    key = "email:0a0d598f-9228-52ea-a884-622bd37036de:1:opened"
    assert message_id(key) == message_id(key)
    assert message_id(key) != message_id(key.replace(":1:", ":2:"))
    message = build_email(
        key=key,
        sender="support@example.com",
        to="bob@acme.example",
        subject="Solved:\r\n VPN",
        text="Done.\n",
        ticket_id="0a0d598f",
    )
    assert message["Message-ID"] == message_id(key)
    assert message["Subject"] == "Solved: VPN"  # no header injection through a subject
    assert message["In-Reply-To"] == message["References"] == "<ticket-0a0d598f@ticketing>"
    assert message["Auto-Submitted"] == "auto-generated"
