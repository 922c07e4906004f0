// The gift alert queue: one alert on screen at a time, in arrival order, none dropped.
//
// A storm does not stack alerts on top of each other: alerts wait in a queue, and the longer
// the queue, the shorter each one stays (never under MIN_MS), so the backlog drains.
// Streaks are one alert whose "× N" grows:
//   - with a server streak (`event.streak = {id, count, phase}`), gifts of the same streak id
//     update one alert to N = streak.count; a `streak_end` event (same `streak_id`) closes it;
//   - without one, consecutive gifts of a combo gift by the same sender fold into the alert
//     that is showing or waiting for them, N adding up their counts.
// Each alert element carries data-from, data-gift and data-count (for tests and custom CSS).

import { giftArt } from "/static/gift-art.js";

const MIN_MS = 700;
const LEAVE_MS = 300; // the leave transition in alerts.css
const HOLD_MS = 1500; // a streak that grows stays at least this long after its last gift

export class AlertQueue {
  /** stage: the element alerts appear in; gifts: Map of gift id -> catalog entry. */
  constructor(stage, gifts) {
    this.stage = stage;
    this.gifts = gifts;
    this.queue = [];
    this.current = null;
    this.timer = null;
    this.leaveAt = 0;
  }

  gift(id) {
    return this.gifts.get(id) || { id, name: id.replace(/_/g, " "), tier: 1, combo: false, animation_ms: 1500 };
  }

  /** A `gift` room event to announce. */
  push(event) {
    const gift = this.gift(event.gift_id);
    const streak = event.streak && event.streak.id !== undefined ? event.streak : null;
    const key = streak ? `s:${streak.id}` : gift.combo ? `c:${event.from}:${gift.id}` : null;
    const open = key && [this.current, ...this.queue].find((alert) => alert && alert.key === key && !alert.ended);
    if (open) {
      open.count = streak ? streak.count : open.count + event.count;
      open.ended = Boolean(streak && streak.phase === "end");
      this.render(open);
      if (open === this.current) this.holdAtLeast(HOLD_MS);
      return;
    }
    const count = streak ? streak.count : event.count;
    this.queue.push({ key, from: event.from, gift, count, ended: Boolean(streak && streak.phase === "end") });
    if (!this.current) this.next();
  }

  /** A `streak_end` event ({streak_id, count: the final count}): the streak's alert stops growing. */
  endStreak(event) {
    const alert = [this.current, ...this.queue].find((a) => a && a.key === `s:${event.streak_id}`);
    if (!alert) return;
    alert.ended = true;
    if (typeof event.count === "number") alert.count = event.count;
    this.render(alert);
  }

  next() {
    this.current = this.queue.shift() || null;
    if (!this.current) return;
    const alert = this.current;
    alert.el = document.createElement("div");
    alert.el.className = `alert tier-${Math.min(4, Math.max(1, alert.gift.tier || 1))}`;
    alert.el.innerHTML = `<div class="alert-art">${giftArt(alert.gift)}</div>
      <div class="alert-text"><div class="alert-from"></div><div class="alert-what"></div></div>
      <div class="alert-count"></div>`;
    this.render(alert);
    this.stage.append(alert.el);
    // The more alerts wait, the shorter each stays: a storm drains instead of dropping alerts.
    this.leaveIn(Math.max(MIN_MS, (alert.gift.animation_ms || 1500) / (1 + this.queue.length / 2)));
  }

  leaveIn(ms) {
    clearTimeout(this.timer);
    this.leaveAt = performance.now() + ms;
    this.timer = setTimeout(() => this.leave(), ms);
  }

  /** A growing streak stays on screen at least `ms` more (less when others are waiting). */
  holdAtLeast(ms) {
    const wanted = Math.max(MIN_MS, ms / (1 + this.queue.length / 2));
    if (this.leaveAt - performance.now() < wanted) this.leaveIn(wanted);
  }

  render(alert) {
    if (!alert.el) return;
    alert.el.dataset.from = alert.from;
    alert.el.dataset.gift = alert.gift.id;
    alert.el.dataset.count = String(alert.count);
    alert.el.querySelector(".alert-from").textContent = alert.from;
    alert.el.querySelector(".alert-what").textContent = `sent ${alert.gift.name}`;
    const count = alert.el.querySelector(".alert-count");
    count.textContent = `× ${alert.count}`;
    count.classList.remove("bump");
    void count.offsetWidth; // restart the bump animation
    count.classList.add("bump");
  }

  leave() {
    const alert = this.current;
    alert.ended = true; // a later gift of the same combo starts a new alert
    alert.el.classList.add("leaving");
    setTimeout(() => {
      alert.el.remove();
      this.next();
    }, LEAVE_MS);
  }
}
