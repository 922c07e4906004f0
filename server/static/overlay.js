// The creator overlay (an OBS browser source): diamond counter, goal bar, top gifters, alerts.
// URL: /overlay/<creator>?token=<overlay token>. Totals come from the join snapshot and are
// advanced by each room event exactly once (room.js decides what counts and what is news).

import { RoomClient, backoffMs } from "/static/room.js";
import { AlertQueue } from "/static/alerts.js";

const TOP_SHOWN = 5;
const COUNT_UP_MS = 600;

const room = decodeURIComponent(location.pathname.split("/").pop());
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

/** When the overlay token expires (its `exp` claim, ms), or Infinity if it cannot be read. */
function tokenExpiry() {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return claims.exp * 1000;
  } catch {
    return Infinity;
  }
}
const number = (n) => n.toLocaleString("en-US");

const state = { diamonds: 0, goal: 0, status: "closed", top: new Map() };
let shownDiamonds = 0;
let tween = null;

/** Count the diamond counter up (or down) to state.diamonds. */
function showDiamonds() {
  const from = shownDiamonds;
  const to = state.diamonds;
  const start = performance.now();
  cancelAnimationFrame(tween);
  const step = (now) => {
    const t = Math.min(1, (now - start) / COUNT_UP_MS);
    shownDiamonds = Math.round(from + (to - from) * (1 - (1 - t) ** 3));
    $("diamonds").textContent = number(shownDiamonds);
    if (t < 1) tween = requestAnimationFrame(step);
  };
  tween = requestAnimationFrame(step);
  showGoal();
}

function showGoal() {
  $("goal").hidden = state.goal <= 0;
  if (state.goal <= 0) return;
  $("goal-text").textContent = `${number(state.diamonds)} / ${number(state.goal)}`;
  $("goal-fill").style.width = `${Math.min(100, (100 * state.diamonds) / state.goal)}%`;
  $("goal").classList.toggle("reached", state.diamonds >= state.goal);
}

function showTop() {
  const rows = [...state.top].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, TOP_SHOWN);
  $("top-panel").hidden = rows.length === 0;
  $("top").replaceChildren(...rows.map(([user, coins]) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = user;
    const amount = document.createElement("span");
    amount.className = "coins";
    amount.textContent = number(coins);
    li.append(name, amount);
    li.dataset.user = user;
    return li;
  }));
}

function showStatus(status) {
  state.status = status;
  $("offline").hidden = status === "open";
}

function applySnapshot(snapshot) {
  state.diamonds = snapshot.live_diamonds;
  state.goal = snapshot.goal || 0;
  state.top = new Map(snapshot.top);
  showStatus(snapshot.status);
  showDiamonds();
  showTop();
}

function applyEvent(alerts, event, { count, alert }) {
  switch (event.t) {
    case "gift":
      if (count) {
        state.diamonds += event.diamonds;
        state.top.set(event.from, (state.top.get(event.from) || 0) + event.coins);
        showDiamonds();
        showTop();
      }
      if (alert) alerts.push(event);
      break;
    case "live":
      if (count && event.state === "open") {
        state.diamonds = 0; // a new live starts from zero, and without a goal, on the server too
        state.goal = 0;
        state.top.clear();
        showDiamonds();
        showTop();
      }
      if (count) showStatus(event.state);
      break;
    case "goal":
      if (count) {
        state.goal = event.diamonds;
        showGoal();
      }
      break;
    case "streak_end":
      if (alert) alerts.endStreak(event);
      break;
    default: // events this overlay does not show (e.g. viewer counts) are ignored
  }
}

/** The gift catalog (names, tiers, animation lengths); retried until the server answers. */
async function loadGifts() {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch("/v1/catalog/gifts");
      if (response.ok) return new Map((await response.json()).gifts.map((gift) => [gift.id, gift]));
    } catch {
      // the server is not reachable yet (OBS often starts before it): try again
    }
    await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt)));
  }
}

async function main() {
  const gifts = await loadGifts();
  const alerts = new AlertQueue($("alerts"), gifts);
  let statusTimer = null;
  const client = new RoomClient({
    room,
    token,
    onSnapshot: applySnapshot,
    onEvent: (event, how) => applyEvent(alerts, event, how),
    onStatus: (status) => {
      // Say so only if it lasts: a quick reconnect should not flash on stream.
      clearTimeout(statusTimer);
      document.body.dataset.connection = status;
      if (status === "live") {
        $("status").hidden = true;
      } else {
        statusTimer = setTimeout(() => {
          // An expired token can never reconnect: say what to do instead of retrying silently.
          $("status").textContent = Date.now() >= tokenExpiry()
            ? "overlay token expired: mint a new overlay URL"
            : status === "connecting" ? "connecting…" : "reconnecting…";
          $("status").hidden = false;
        }, 2000);
      }
    },
  });
  client.start();
}

main();
