// giftcast viewer demo: log in (dev token), buy coins (sandbox checkout), join a live, send gifts.
// HTTP API: docs/http.md. WebSocket: docs/protocol.md, through the shared room client.

import { RoomClient } from "/static/room.js";
import { AlertQueue } from "/static/alerts.js";
import { giftArt } from "/static/gift-art.js";

const $ = (id) => document.getElementById(id);
const number = (n) => n.toLocaleString("en-US");
const FEED_LENGTH = 20;
const ORDER_WAIT_MS = 15000;
const UNAVAILABLE_RETRIES = 3;

// receiptSeq: the room seq of the newest gift receipt shown; acks may arrive out of order.
const session = { user: null, token: null, client: null, gifts: new Map(), alerts: null, receiptSeq: 0 };

// What the viewer reads for each error code; anything else shows the server's message.
const EXPLAIN = {
  insufficient_funds: (ctx) => `Not enough coins for ${ctx.gift}: it costs ${ctx.price}, you have ${ctx.balance}. Buy a bundle first.`,
  room_closed: (ctx) => `${ctx.room} is not live right now, so gifts cannot be sent.`,
  self_gift: () => "You cannot send gifts into your own live.",
  not_in_room: () => "Join the live before sending gifts.",
  unavailable: () => "The server is busy and the outcome is unknown; your gift was retried and did not go through. Try again.",
  forbidden: (ctx, error) => `Not allowed: ${error.message}.`,
  dev_tokens_disabled: () => "This server has dev tokens turned off, so the demo cannot log in. Start it with GIFTCAST_DEV_TOKENS=1 (make run does).",
  sandbox_disabled: () => "This server has the sandbox checkout turned off, so the demo cannot buy coins. Start it with GIFTCAST_SANDBOX_PAYMENTS=1 (make run does).",
  payment_failed: () => "The payment did not go through.",
  offline: () => "Not connected to the live; reconnecting…",
};

function say(kind, text, code = "") {
  const box = $("message");
  box.className = `message ${kind}`;
  box.textContent = text;
  box.dataset.code = code;
  box.hidden = false;
}

function fail(error, ctx = {}) {
  const explain = EXPLAIN[error.code] || ((c, e) => e.message || e.code);
  say("error", explain(ctx, error), error.code);
}

class ApiError extends Error {
  constructor(error) {
    super(error.message || error.code);
    this.code = error.code;
  }
}

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({ error: { code: "http_error", message: response.statusText } }));
  if (!response.ok) throw new ApiError(data.error || { code: "http_error", message: String(response.status) });
  return data;
}

/** An idempotency key: fresh per tap (crypto.randomUUID needs a secure context; this does not). */
function newKey() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function mint(user, role) {
  try {
    return (await api("POST", "/dev/tokens", { user_id: user, role })).token;
  } catch (error) {
    throw error.code === "not_found" ? new ApiError({ code: "dev_tokens_disabled" }) : error;
  }
}

function showCoins(coins) {
  session.coins = coins;
  $("coins").textContent = number(coins);
  $("coins").dataset.coins = String(coins);
}

async function refreshWallet() {
  showCoins((await api("GET", "/v1/me/wallet")).coins);
}

async function login(event) {
  event.preventDefault();
  const user = $("user").value.trim();
  try {
    session.token = await mint(user, "viewer");
    session.user = user;
    $("who").textContent = user;
    await refreshWallet();
    const { bundles } = await api("GET", "/v1/catalog/bundles");
    $("bundles").replaceChildren(...bundles.map(bundleButton));
    $("wallet").hidden = false;
    $("live").hidden = false;
    say("info", `Logged in as ${user}.`);
  } catch (error) {
    fail(error);
  }
}

function bundleButton(bundle) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.bundle = bundle.id;
  const price = (bundle.price / 100).toLocaleString("en-US", { style: "currency", currency: bundle.currency });
  button.textContent = `${number(bundle.coins)}${bundle.bonus_coins ? ` + ${bundle.bonus_coins}` : ""} coins · ${price}`;
  button.addEventListener("click", () => buy(bundle, button));
  return button;
}

async function buy(bundle, button) {
  button.disabled = true;
  say("info", `Paying for ${number(bundle.coins)} coins in the sandbox…`);
  try {
    const order = await api("POST", "/v1/orders", { bundle_id: bundle.id, method: "card" });
    try {
      await api("POST", order.checkout_url, {});
    } catch (error) {
      throw error.code === "not_found" ? new ApiError({ code: "sandbox_disabled" }) : error;
    }
    // The provider's webhook credits the order asynchronously: wait for it.
    const deadline = Date.now() + ORDER_WAIT_MS;
    let current = order;
    while (current.status === "pending" && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      current = await api("GET", `/v1/orders/${order.id}`);
    }
    if (current.status !== "paid") throw new ApiError({ code: "payment_failed" });
    await refreshWallet();
    say("info", `Bought ${number(order.coins + order.bonus_coins)} coins.`);
  } catch (error) {
    fail(error);
  } finally {
    button.disabled = false;
  }
}

async function goLive() {
  const room = $("room").value.trim();
  try {
    const creatorToken = await mint(room, "creator");
    const response = await fetch("/v1/live/open", { method: "POST", headers: { authorization: `Bearer ${creatorToken}` } });
    if (!response.ok) throw new ApiError((await response.json()).error);
    say("info", `${room} is live (demo creator).`);
  } catch (error) {
    fail(error);
  }
}

async function loadGifts() {
  if (session.gifts.size) return;
  const { gifts } = await api("GET", "/v1/catalog/gifts");
  for (const gift of gifts) session.gifts.set(gift.id, gift);
  $("gifts").replaceChildren(...gifts.map((gift) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "gift";
    button.dataset.gift = gift.id;
    button.innerHTML = `${giftArt(gift)}<span class="gift-name"></span><span class="gift-price"></span>`;
    button.querySelector(".gift-name").textContent = gift.name;
    button.querySelector(".gift-price").textContent = `${number(gift.coins)} coin${gift.coins === 1 ? "" : "s"}`;
    button.addEventListener("click", () => sendGift(gift));
    return button;
  }));
  session.alerts = new AlertQueue($("stage"), session.gifts);
}

async function join(event) {
  event.preventDefault();
  const room = $("room").value.trim();
  try {
    await loadGifts();
  } catch (error) {
    fail(error);
    return;
  }
  if (session.client) session.client.stop();
  $("feed").replaceChildren();
  $("room-name").textContent = room;
  const roomState = { diamonds: 0 };
  const client = new RoomClient({
    room,
    token: session.token,
    onSnapshot: (snapshot) => {
      roomState.diamonds = snapshot.live_diamonds;
      showRoom(snapshot.status, roomState.diamonds);
    },
    onEvent: (event, { count, alert }) => {
      if (event.t === "gift") {
        if (count) roomState.diamonds += event.diamonds;
        if (alert) {
          session.alerts.push(event);
          addToFeed(event);
        }
      } else if (event.t === "live" && count) {
        if (event.state === "open") roomState.diamonds = 0;
        showRoom(event.state, roomState.diamonds);
        return;
      } else if (event.t === "streak_end" && alert) {
        session.alerts.endStreak(event);
      }
      showRoom(null, roomState.diamonds);
    },
    onStatus: (status) => {
      $("connection").textContent = status === "live" ? "● connected" : `○ ${status}…`;
      $("connection").dataset.status = status;
      for (const button of $("gifts").children) button.disabled = status !== "live";
    },
    onError: (error) => fail(error, { room }),
  });
  session.client = client;
  session.room = room;
  session.receiptSeq = 0;
  $("room-view").hidden = false;
  client.start();
}

function showRoom(status, diamonds) {
  if (status) {
    $("room-status").textContent = status === "open" ? "LIVE" : "offline";
    $("room-status").dataset.status = status;
  }
  $("room-diamonds").textContent = number(diamonds);
}

function addToFeed(event) {
  const gift = session.gifts.get(event.gift_id) || { name: event.gift_id };
  const li = document.createElement("li");
  li.textContent = `${event.from} sent ${gift.name} × ${event.count}`;
  $("feed").prepend(li);
  while ($("feed").children.length > FEED_LENGTH) $("feed").lastElementChild.remove();
}

/** One tap: one gift frame with a fresh key; `unavailable` is retried with the same key. */
async function sendGift(gift) {
  const client = session.client;
  const frame = { t: "gift", room: session.room, gift_id: gift.id, count: 1, key: newKey() };
  let reply;
  try {
    for (let attempt = 0; attempt <= UNAVAILABLE_RETRIES; attempt++) {
      reply = await client.request(frame); // the same key: a retry is never charged twice
      if (reply.t !== "error" || reply.code !== "unavailable") break;
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
    }
  } catch {
    fail({ code: "offline" });
    return;
  }
  if (reply.t === "ack") {
    if (reply.receipt.seq > session.receiptSeq) {
      session.receiptSeq = reply.receipt.seq;
      showCoins(reply.receipt.balance);
    }
    $("message").hidden = true;
  } else {
    fail(reply, { gift: gift.name, price: number(gift.coins), balance: number(session.coins), room: session.room });
  }
}

$("user").value = `viewer${Math.floor(Math.random() * 9000) + 1000}`;
$("login-form").addEventListener("submit", login);
$("join-form").addEventListener("submit", join);
$("go-live").addEventListener("click", goLive);
