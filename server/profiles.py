"""A user's profile: region, birth date, account type. Pure: the type, validation and age.

Profiles are set by an admin (`PUT /v1/admin/users/{id}/profile`) or, in development, when a
dev token is minted; a user reads their own. Every field is optional: no region means the
catalog's default region (as does a region the catalog no longer has), no birth date means the
age is unknown (allowed to spend unless `GIFTCAST_REQUIRE_BIRTH_DATE`), no type means
``personal``. Government and political accounts may neither send nor receive gifts.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from server.catalog import Catalog
from server.errors import InvalidField

__all__ = ["Profile", "ACCOUNT_TYPES", "NO_GIFT_ACCOUNTS", "age_on", "profile_changes"]

ACCOUNT_TYPES = ("personal", "business", "government", "political")
NO_GIFT_ACCOUNTS = frozenset({"government", "political"})
OLDEST = datetime.date(1900, 1, 1)


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    user_id: str
    region: str | None = None
    birth_date: datetime.date | None = None
    account_type: str = "personal"

    @classmethod
    def from_fields(cls, user_id: str, fields: Mapping[str, str]) -> Profile:
        """From the stored hash (written only through `profile_changes`, so already valid)."""
        birth = fields.get("birth_date")
        return cls(user_id, fields.get("region") or None,
                   datetime.date.fromisoformat(birth) if birth else None,
                   fields.get("account_type") or "personal")

    def to_wire(self, catalog: Catalog) -> dict[str, Any]:
        return {"user_id": self.user_id, "region": catalog.home_region(self.region).code,
                "birth_date": self.birth_date.isoformat() if self.birth_date else None,
                "account_type": self.account_type}


def age_on(birth: datetime.date, today: datetime.date) -> int:
    """Completed years (someone born on 29 February turns a year older on 1 March)."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def profile_changes(catalog: Catalog, data: Mapping[str, Any], today: datetime.date) -> dict[str, str | None]:
    """Validate a profile update: field -> new value, None to clear it. InvalidField if bad."""
    changes: dict[str, str | None] = {}
    if unknown := set(data) - {"region", "birth_date", "account_type"}:
        raise InvalidField(f"unknown profile fields {sorted(unknown)[:5]}")
    if "region" in data:
        region = data["region"]
        if region is not None and (not isinstance(region, str) or region not in catalog.regions):
            raise InvalidField(f"region must be one of {', '.join(sorted(catalog.regions))}")
        changes["region"] = region
    if "birth_date" in data:
        birth = data["birth_date"]
        if birth is not None:
            try:
                parsed = datetime.date.fromisoformat(birth) if isinstance(birth, str) and len(birth) == 10 else None
            except ValueError:
                parsed = None
            if parsed is None or not OLDEST <= parsed <= today:
                raise InvalidField("birth_date must be a past date, YYYY-MM-DD")
        changes["birth_date"] = birth
    if "account_type" in data:
        if data["account_type"] not in ACCOUNT_TYPES:
            raise InvalidField(f"account_type must be one of {', '.join(ACCOUNT_TYPES)}")
        changes["account_type"] = data["account_type"]
    return changes
