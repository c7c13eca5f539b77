// One WebSocket for public and private streams, reconnecting with back-off.
// On every (re)connect it authenticates again, resubscribes every stream and calls onOpen
// so the page resyncs what it may have missed; a banner shows while the link is down.

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 10000;

export class Socket {
  constructor(url, { onFrame, onOpen, onDown, authParams }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onDown = onDown;
    this.authParams = authParams; // async () => params | null
    this.streams = new Set();
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject}
    this.delay = MIN_DELAY_MS;
    this.ws = null;
    this.open = false;
    this.authed = false;
    this.connect();
  }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this.opened(ws);
    ws.onmessage = (event) => this.received(event.data);
    ws.onclose = () => this.closed(ws);
    ws.onerror = () => {}; // onclose follows
  }

  async opened(ws) {
    this.open = true;
    this.authed = false;
    this.delay = MIN_DELAY_MS;
    try {
      await this.authenticate();
      const streams = [...this.streams];
      if (streams.length) await this.call("SUBSCRIBE", streams);
    } catch (exc) {
      console.warn("resubscribe failed", exc);
    }
    if (this.ws === ws) this.onOpen?.();
  }

  closed(ws) {
    if (this.ws !== ws) return;
    this.open = false;
    this.authed = false;
    for (const { reject } of this.pending.values()) reject(new Error("connection lost"));
    this.pending.clear();
    if (this.restarting) {
      this.restarting = false;
      this.connect();
      return;
    }
    this.onDown?.();
    const delay = this.delay * (0.8 + Math.random() * 0.4);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    setTimeout(() => this.connect(), delay);
  }

  received(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame.id !== undefined && this.pending.has(frame.id)) {
      const { resolve, reject } = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      if (frame.error) reject(Object.assign(new Error(frame.error.message), { code: frame.error.code }));
      else resolve(frame.result);
      return;
    }
    if (frame.stream) this.onFrame(frame.stream, frame.data);
  }

  call(method, params) {
    if (!this.open) return Promise.reject(new Error("not connected"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ method, params, id }));
    });
  }

  async authenticate() {
    const params = await this.authParams();
    if (!params) return false;
    await this.call("AUTH", params);
    this.authed = true;
    return true;
  }

  async subscribe(...streams) {
    const fresh = streams.filter((s) => !this.streams.has(s));
    fresh.forEach((s) => this.streams.add(s));
    if (fresh.length && this.open) await this.call("SUBSCRIBE", fresh);
  }

  async unsubscribe(...streams) {
    const known = streams.filter((s) => this.streams.has(s));
    known.forEach((s) => this.streams.delete(s));
    if (known.length && this.open) await this.call("UNSUBSCRIBE", known);
  }

  // A new identity needs a new connection (the server refuses a second AUTH as another user).
  restart() {
    if (this.ws && this.open) {
      this.restarting = true;
      this.ws.close();
    }
  }

  // Ask for a fresh depth snapshot: the server sends one on every SUBSCRIBE.
  async resubscribe(stream) {
    if (!this.open) return;
    await this.call("UNSUBSCRIBE", [stream]).catch(() => {});
    await this.call("SUBSCRIBE", [stream]);
  }
}
