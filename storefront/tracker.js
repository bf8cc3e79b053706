// Interaction events to the collector (POST /v1/events), the way a shop's tracker sends them.
// The visitor's id is never in the body: the collector takes it from the signed pz_id cookie, or mints one.
import { currentConsent } from "./consent.js";

const SESSION_KEY = "shop.session";
const listeners = new Set();
// One request at a time: a new visitor's first answer carries the identity cookie, and a request sent before
// it arrives would be given an identity of its own.
let queue = Promise.resolve();

/** A random id per tab: sessionStorage is per tab and survives reloads within it. */
export function sessionId() {
  let id = sessionStorage.getItem(SESSION_KEY);
  if (!id) {
    id = crypto.randomUUID();
    sessionStorage.setItem(SESSION_KEY, id);
  }
  return id;
}

function device() {
  return window.matchMedia("(max-width: 700px)").matches ? "mobile" : "desktop";
}

function page() {
  return (location.hash.replace(/^#/, "") || "/").slice(0, 256);
}

/** Runs after every batch the collector has answered (accepted or not): slots re-fetch on it. */
export function onTracked(listener) {
  listeners.add(listener);
}

function withoutEmpty(fields) {
  // The schema has no nulls for quantity and wants absent rather than null fields in general.
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined && value !== null));
}

export function buildEvent(type, fields = {}, consent = currentConsent()) {
  return {
    type,
    ts: new Date().toISOString(),
    session_id: sessionId(),
    // Minutes ahead of UTC: the profile keeps a local time-of-day mix.
    context: { device: device(), page: page(), utc_offset_min: -new Date().getTimezoneOffset() },
    consent,
    ...withoutEmpty(fields),
  };
}

/**
 * Send events; without analytics consent nothing is sent, except a consent event (a withdrawal must reach the
 * profile to take effect). Resolves to the collector's answer, or null when nothing was sent or it failed.
 */
export function send(events) {
  const allowed = events.filter((event) => event.consent.analytics || event.type === "consent");
  if (allowed.length === 0) return Promise.resolve(null);
  const sent = queue.then(() => post(allowed));
  queue = sent;
  return sent;
}

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function post(allowed) {
  let answer = null;
  try {
    const body = JSON.stringify({ events: allowed });
    const response = await fetch("/v1/events", {
      method: "POST",
      credentials: "same-origin",
      // CloudFront's Origin Access Control signs the body's hash for the collector's Function URL, which
      // accepts no unsigned body (docs/collector.md); the local edge forwards it like any other header.
      headers: { "content-type": "application/json", "x-amz-content-sha256": await sha256Hex(body) },
      body,
      keepalive: true,
    });
    answer = { status: response.status, body: await response.json().catch(() => null) };
  } catch (error) {
    console.warn("events not sent", error);
  }
  for (const listener of listeners) listener(allowed, answer);
  return answer;
}

export function track(type, fields = {}) {
  return send([buildEvent(type, fields)]);
}

export function itemFields(item, quantity = 1) {
  return { item_id: item.id, category: item.category, price: item.price, quantity };
}
