"""What happens when a gift is sent, in one place.

1. The frame was decoded and validated by `codec.decode` (types, count range, key form).
2. `economy.price_gift` applies the rules, pure: the sender may spend, is not the room's
   creator, the gift exists in the *server's* catalog; it computes coins = price x count and
   diamonds = coins x rate. The client never names a price.
3. `WalletStore.apply_gift` runs `lua/send_gift.lua`, one atomic script that, after all its
   checks (idempotency key, amounts, room open, balance), debits the sender, credits the
   creator, updates the live's totals and top-gifter ranking, writes a ledger entry on both
   sides, appends the event to the room's history stream, PUBLISHes it on the room channel and
   records the idempotency key with its result. A retry with the same key returns the first
   receipt and charges nothing. On Redis Cluster the sender's and the creator's keys are in
   different slots: `SplitGiftStore.apply_gift` (split_gift.py) runs the same two halves as
   separate single-slot steps joined by an outbox, with the same receipt.
4. Every hub process subscribed to the room's channel receives the event (`broker.py`) and
   `RoomHub.dispatch` encodes it once per wire format and writes the same bytes to every local
   member; the sender is told its receipt directly as the reply to its request.
"""

from __future__ import annotations

from server.auth import Principal
from server.catalog import Catalog
from server.codec import SendGift
from server.economy import price_gift
from server.split_gift import SplitGiftStore
from server.wallet_store import GiftReceipt, WalletStore

__all__ = ["GiftService"]


class GiftService:
    def __init__(self, catalog: Catalog, wallets: WalletStore | SplitGiftStore, *, rate_bp: int):
        self._catalog = catalog
        self._wallets = wallets
        self._rate_bp = rate_bp

    async def send_gift(self, sender: Principal, request: SendGift) -> GiftReceipt:
        charge = price_gift(self._catalog, sender, request, rate_bp=self._rate_bp)
        return await self._wallets.apply_gift(charge)
