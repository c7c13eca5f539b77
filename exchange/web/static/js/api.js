// REST client over the contract: public calls, and private calls as the signed-in user.
// Dev mode puts user_id in the query/body; API-key mode signs
// timestamp + METHOD + target + body with HMAC-SHA256 (WebCrypto), as the contract says.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  describe() {
    return `${this.message} (${this.code}, HTTP ${this.status})`;
  }
}

const CREDENTIALS = "exchange.credentials";

export function loadCredentials() {
  try {
    return JSON.parse(sessionStorage.getItem(CREDENTIALS) || "null");
  } catch {
    return null;
  }
}

export function saveCredentials(credentials) {
  if (credentials) sessionStorage.setItem(CREDENTIALS, JSON.stringify(credentials));
  else sessionStorage.removeItem(CREDENTIALS);
}

const encoder = new TextEncoder();
const keyCache = new Map();

export async function hmacHex(secret, text) {
  if (!globalThis.crypto?.subtle) {
    throw new ApiError(0, "INSECURE_CONTEXT", "signing needs WebCrypto: open the page over https or 127.0.0.1");
  }
  let key = keyCache.get(secret);
  if (!key) {
    key = await crypto.subtle.importKey(
      "raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keyCache.set(secret, key);
  }
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(text)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Api {
  constructor(authMode) {
    this.authMode = authMode; // "dev" | "apikey"
    this.credentials = null; // {user_id} | {api_key, api_secret}
  }

  get signedIn() {
    return Boolean(this.credentials);
  }

  async get(path, query = {}) {
    return this.request("GET", path, { query });
  }

  async private(method, path, { query = {}, body = undefined } = {}) {
    if (!this.credentials) throw new ApiError(401, "UNAUTHORIZED", "sign in first");
    query = { ...query };
    if (this.authMode === "dev") {
      if (body !== undefined && !Array.isArray(body)) body = { ...body, user_id: this.credentials.user_id };
      else query.user_id = this.credentials.user_id;
    }
    return this.request(method, path, { query, body, sign: this.authMode === "apikey" });
  }

  async request(method, path, { query = {}, body = undefined, sign = false } = {}) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, value);
    }
    const qs = params.toString();
    const target = qs ? `${path}?${qs}` : path;
    const text = body === undefined ? "" : JSON.stringify(body);
    const headers = {};
    if (text) headers["Content-Type"] = "application/json";
    if (sign) {
      const timestamp = String(Date.now());
      headers["X-API-KEY"] = this.credentials.api_key;
      headers["X-TIMESTAMP"] = timestamp;
      headers["X-SIGNATURE"] = await hmacHex(
        this.credentials.api_secret, timestamp + method + target + text);
    }
    let response;
    try {
      response = await fetch(target, { method, headers, body: text || undefined, cache: "no-store" });
    } catch (exc) {
      throw new ApiError(0, "NETWORK", `the API cannot be reached (${exc.message})`);
    }
    let data = null;
    const raw = await response.text();
    try {
      data = raw ? JSON.parse(raw) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = data?.error;
      throw new ApiError(
        response.status,
        error?.code || `HTTP_${response.status}`,
        error?.message || raw || response.statusText,
      );
    }
    return data;
  }
}
