"""The portal's wire format (docs/portal-api.yaml) as validated pydantic models."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from enum import IntEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Status(IntEnum):
    """Dossier status codes used when one-stop systems sync dossiers to the national portal."""

    NEW = 1
    RECEIVED = 2
    NOT_ACCEPTED = 3
    PROCESSING = 4
    SUPPLEMENT_REQUESTED = 5
    FINANCIAL_OBLIGATION = 6
    WITHDRAWN = 7
    STOPPED = 8
    PROCESSED = 9
    RESULT_RETURNED = 10


# Nothing more will happen to a dossier in these statuses, so following it can end.
FINAL_STATUSES = frozenset({Status.NOT_ACCEPTED, Status.WITHDRAWN, Status.STOPPED, Status.RESULT_RETURNED})


class _Wire(BaseModel):
    # The portal may add fields; we read what the contract promises and ignore the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class TokenResponse(_Wire):
    access_token: str = Field(min_length=1)
    expires_in: int = Field(gt=0)
    token_type: str


class StatusInfo(_Wire):
    code: Status
    name: str | None = None  # the portal's own wording; the bot shows its own label


class Supplement(_Wire):
    """The agency asked the citizen for more papers."""

    items: list[str] = Field(min_length=1)
    deadline: AwareDatetime | None = None
    note: str | None = None


class Fee(_Wire):
    """A financial obligation (fee, charge, tax) the citizen still has to pay."""

    amount: int = Field(ge=0)
    currency: str = "VND"
    description: str | None = None
    deadline: AwareDatetime | None = None


class HistoryEntry(_Wire):
    status: Status
    time: AwareDatetime
    note: str | None = None


class Dossier(_Wire):
    """A dossier as the portal shows it: the public view of a bare code (code, procedure, status) or, after the
    applicant's second factor, the full view (docs/portal-api.yaml, "Who sees what")."""

    code: str = Field(min_length=1, max_length=40)
    procedure_name: str
    # "public" unless the portal says otherwise: nothing beyond the public fields is shown from an answer that
    # does not say it is the full view.
    access: Literal["public", "full"] = "public"
    dossier_key: str | None = Field(default=None, max_length=128)  # full view only: a key for later reads
    applicant_name: str | None = None
    status: StatusInfo
    received_at: AwareDatetime | None = None
    appointment_at: AwareDatetime | None = None
    agency: str | None = None
    supplement: Supplement | None = None
    fee: Fee | None = None
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def full(self) -> bool:
        return self.access == "full"

    @property
    def final(self) -> bool:
        return self.status.code in FINAL_STATUSES

    def fingerprint(self) -> str:
        """A digest of what the citizen would be told about, so a change of any of it is noticed once.

        The applicant's name is left out: a digest of it would still be personal data at rest.
        """
        state = {
            "access": self.access,
            "status": int(self.status.code),
            "appointment_at": self.appointment_at.isoformat() if self.appointment_at else None,
            "supplement": self.supplement.model_dump(mode="json") if self.supplement else None,
            "fee": self.fee.model_dump(mode="json") if self.fee else None,
            "history": len(self.history),
        }
        blob = json.dumps(state, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def deadlines(self) -> list[tuple[str, dt.datetime]]:
        """Dates a reminder could be set for: supplement deadline, fee deadline, appointment (result due)."""
        out: list[tuple[str, dt.datetime]] = []
        if self.supplement is not None and self.supplement.deadline is not None:
            out.append(("supplement", self.supplement.deadline))
        if self.fee is not None and self.fee.deadline is not None:
            out.append(("fee", self.fee.deadline))
        if self.appointment_at is not None and not self.final:
            out.append(("appointment", self.appointment_at))
        return out


class ErrorBody(_Wire):
    error: str
    message: str | None = None
