// giftcast room client for browsers: one WebSocket (JSON subprotocol), one room, reconnecting.
//
// Protocol: docs/protocol.md. This client keeps two positions in the room's event sequence:
//   counted: the last seq reflected in the room's totals (a snapshot's seq, then each event);
//   alerted: the last seq handed out as news (an alert on screen).
// A snapshot is authoritative for the totals up to its seq, so an event with seq <= counted
// never changes a total twice. An event with seq > alerted is shown once, even when its totals
// are already in a snapshot. Every rejoin sends `since: {epoch, seq: alerted}`: the server then
// replays what we missed (`resumed: true`, no snapshot: our totals stand and the replayed
// events apply on top), or answers with a fresh snapshot (`reset: true`) when it cannot. A
// `reset` frame (events the server lost) replaces the totals the same way.
// Unknown frame types and unknown fields are ignored, so newer servers work unchanged.

export const SUBPROTOCOL = "giftcast.json.v1";
const PING_EVERY_MS = 15000;
const SILENT_MS = 40000; // no frame at all (not even a pong) for this long: the link is dead
const REQUEST_TIMEOUT_MS = 10000;

/** Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)]. */
export function backoffMs(attempt, baseMs = 500, capMs = 15000, random = Math.random) {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** attempt));
}

export function wsUrl(token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws?token=${encodeURIComponent(token)}`;
}

export class RoomClient {
  /**
   * room: the creator's id; token: a bearer token that may join it.
   * onSnapshot(snapshot): totals as of snapshot.seq (replace what you show).
   * onEvent(event, {count, alert}): a room event; `count`: apply it to the totals;
   *   `alert`: it is news (show it). At least one of the two is true.
   * onStatus(status): "connecting" | "live" | "reconnecting".
   * onError(error): an `error` frame answering a join, or a reply that timed out.
   */
  constructor({ room, token, onSnapshot, onEvent, onStatus, onError }) {
    this.room = room;
    this.token = token;
    this.onSnapshot = onSnapshot || (() => {});
    this.onEvent = onEvent || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onError = onError || (() => {});
    this.counted = null;
    this.alerted = null;
    this.epoch = null;
    this.ws = null;
    this.joined = false;
    this.buffer = []; // room events that arrived before the join's reply
    this.pending = new Map(); // request id -> {resolve, reject, timer}
    this.nextId = 1;
    this.attempt = 0;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.drop(1000);
  }

  /** Send a request frame; resolves with its reply (`error` frames included). */
  request(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("no reply"));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  connect() {
    this.onStatus(this.counted === null ? "connecting" : "reconnecting");
    const ws = new WebSocket(wsUrl(this.token), SUBPROTOCOL);
    this.ws = ws;
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
      this.pingTimer = setInterval(() => this.keepAlive(), PING_EVERY_MS);
      this.join();
    };
    ws.onmessage = (message) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws === ws) this.lost();
    };
  }

  keepAlive() {
    if (Date.now() - this.lastFrameAt > SILENT_MS) {
      this.lost();
      return;
    }
    this.request({ t: "ping" }).catch(() => {});
  }

  /** Close the socket (if any) without reconnecting from its close event. */
  drop(code) {
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    this.joined = false;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error("connection lost"));
    }
    this.pending.clear();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(code);
  }

  lost() {
    this.drop(4000);
    if (this.stopped) return;
    this.onStatus("reconnecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), backoffMs(this.attempt++));
  }

  async join() {
    this.joined = false;
    this.buffer = [];
    const frame = { t: "join", room: this.room };
    if (this.alerted !== null) frame.since = { epoch: this.epoch, seq: this.alerted };
    let reply;
    try {
      reply = await this.request(frame);
    } catch (error) {
      this.onError({ code: "timeout", message: error.message });
      if (this.ws) this.lost();
      return;
    }
    if (reply.t !== "joined") {
      this.onError(reply);
      this.lost(); // e.g. `unavailable`: try again later, with backoff
      return;
    }
    this.attempt = 0;
    this.applyJoined(reply);
    this.joined = true;
    this.onStatus("live");
    const buffered = this.buffer;
    this.buffer = [];
    for (const event of buffered) {
      if (this.joined) this.applyEvent(event);
      else this.buffer.push(event); // a gap sent us back to join: keep them for that snapshot
    }
  }

  applyJoined(reply) {
    const snapshot = reply.snapshot;
    if (!snapshot) return; // resumed: our totals stand, the missed events follow
    const sameHistory = this.epoch !== null && (this.epoch === "" || this.epoch === snapshot.epoch);
    if (!sameHistory) this.alerted = snapshot.seq; // what happened before we first looked is not news
    this.counted = snapshot.seq;
    this.epoch = snapshot.epoch;
    this.onSnapshot(snapshot);
  }

  onFrame(frame) {
    if (frame.id !== undefined && frame.id !== null && this.pending.has(frame.id)) {
      const { resolve, timer } = this.pending.get(frame.id);
      clearTimeout(timer);
      this.pending.delete(frame.id);
      resolve(frame);
      return;
    }
    if (frame.room !== this.room || frame.id !== undefined) return; // not a room event of ours
    if (frame.t === "reset" && frame.snapshot) {
      // The server lost events it could not replay: take its snapshot; the lost ones are not news.
      this.applyJoined(frame);
      this.alerted = Math.max(this.alerted, frame.snapshot.seq);
      return;
    }
    if (typeof frame.seq !== "number") {
      this.onEvent(frame, { count: false, alert: true }); // an unsequenced notice (newer servers)
      return;
    }
    if (!this.joined) {
      this.buffer.push(frame);
      return;
    }
    this.applyEvent(frame);
  }

  applyEvent(event) {
    if (this.epoch && event.epoch && event.epoch !== this.epoch) {
      this.join(); // the room's history was replaced: take a fresh snapshot as is
      return;
    }
    if (event.seq > this.counted + 1) {
      this.join(); // we missed events: a fresh snapshot (and, where supported, a replay)
      return;
    }
    const count = event.seq === this.counted + 1;
    const alert = event.seq > this.alerted;
    if (!count && !alert) return; // already counted and already shown
    if (count) this.counted = event.seq;
    if (alert) this.alerted = event.seq;
    if (event.epoch) this.epoch = event.epoch;
    this.onEvent(event, { count, alert });
  }
}
