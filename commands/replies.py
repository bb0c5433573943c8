"""The one reply shape every interface returns (Python API, CLI `--json`, NATS)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from ticketing.domain.errors import TicketingError


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class Reply(BaseModel):
    """`{"ok": true, "ticket_id", "version", "events"}` or `{"ok": false, "error"}`."""

    ok: bool
    ticket_id: str | None = None
    account_id: str | None = None
    policy_id: str | None = None
    calendar_id: str | None = None
    agent_id: str | None = None
    version: int | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    error: ErrorInfo | None = None

    @classmethod
    def failure(cls, code: str, message: str, **details: Any) -> Reply:
        return cls(ok=False, error=ErrorInfo(code=code, message=message, details=details))

    @classmethod
    def from_error(cls, error: TicketingError) -> Reply:
        return cls.failure(error.code, error.message, **error.details)

    @classmethod
    def from_validation(cls, error: PydanticValidationError) -> Reply:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(command)", "message": e["msg"]}
            for e in error.errors(include_url=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return cls.failure("validation_error", summary, errors=problems)

    def as_dict(self) -> dict[str, Any]:
        if not self.ok:
            return {"ok": False, "error": self.error.model_dump() if self.error else None}
        return self.model_dump(exclude={"error"}, exclude_none=True)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), default=str)
