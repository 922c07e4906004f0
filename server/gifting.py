"""What happens when a gift is sent, in one place.

1. The frame was decoded and validated by `codec.decode` (types, count range, key form).
2. The sender's and the creator's profiles are read in one round trip, or from this process's
   short-lived copy (`ProfileStore`).
3. `economy.gift_charge` applies the rules, pure: the sender may spend (role, age for their
   region, account type), is not the room's creator, the gift exists in the *server's* catalog
   and may be sent from the sender's region now (event gifts have a window); it computes
   coins = price x count and diamonds = coins x the rate in force in the creator's region
   (`rates.py`, versioned; `RateBook` adds the versions admins published at run time). The
   client never names a price.
4. `WalletStore.apply_gift` runs `lua/send_gift.lua`, one atomic script that, after all its
   checks (idempotency key, amounts, the sender's gift rate, room open, account lock, balance,
   spending caps and self-set limits), debits the sender, credits the creator, counts the
   spending, updates the live's totals and the live, weekly and all-time top-gifter rankings,
   starts or extends the combo streak (its end is `lua/end_streaks.lua`'s, see `streaks.py`),
   writes a ledger entry on both sides (with the rate and its version), appends the event to the
   room's history stream, PUBLISHes it on the room channel and records the idempotency key with
   its result. A retry with the same key returns
   the first receipt and charges nothing. On Redis Cluster the sender's and the creator's keys
   are in different slots: `SplitGiftStore.apply_gift` (split_gift.py) runs the same two halves
   as separate single-slot steps joined by an outbox, with the same receipt.
5. Every hub process subscribed to the room's channel receives the event (`broker.py`) and
   `RoomHub.dispatch` encodes it once per wire format and writes the same bytes to every local
   member; the sender is told its receipt directly as the reply to its request.
"""

from __future__ import annotations

import time

from server.auth import Principal
from server.catalog import Catalog
from server.codec import SendGift
from server.economy import gift_charge
from server.profile_store import ProfileStore
from server.rate_store import RateBook
from server.split_gift import SplitGiftStore
from server.wallet_store import GiftReceipt, WalletStore

__all__ = ["GiftService"]


class GiftService:
    def __init__(self, catalog: Catalog, wallets: WalletStore | SplitGiftStore, profiles: ProfileStore,
                 rates: RateBook, *, require_birth_date: bool):
        self._catalog = catalog
        self._rates = rates
        self._wallets = wallets
        self._profiles = profiles
        self._require_birth_date = require_birth_date

    async def send_gift(self, sender: Principal, request: SendGift) -> GiftReceipt:
        sender_profile, creator_profile = await self._profiles.get_many([sender.user_id, request.room])
        charge = gift_charge(self._catalog, sender, request, sender_profile=sender_profile,
                             creator_profile=creator_profile, now_ms=int(time.time() * 1000),
                             require_birth_date=self._require_birth_date, rates=await self._rates.table())
        return await self._wallets.apply_gift(charge)
