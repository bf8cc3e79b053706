// Fragment slots, filled from GET /v1/fragments/{slot}?format=json the way an edge include would fill them,
// each with a debug strip of the response headers that say what serve decided.
import { categoryLabel, describe, formatPrice, hue, itemTitle, tileMark } from "./catalog.js";
import { currentConsent, storedConsent } from "./consent.js";
import { fill, h } from "./dom.js";
import { itemFields, track } from "./tracker.js";

// names.DEBUG_HEADERS, in its order (tests/infrastructure checks); X-Context is the viewer context serve derived.
const DEBUG_HEADERS = ["X-Personalization", "X-Segment", "X-Model-Version", "X-Rules-Version", "X-Experiment-Variant", "X-Context"];
const DEBOUNCE_MS = 250;
// Ingest lags an event by about a second (batching window + fold): after an action, look again a few times
// until the fragment changes, then stop.
const POLL_MS = 800;
const POLLS_AFTER_ACTION = 4;

// Fallbacks that will not last: a known visitor's first events still on their way through ingest, or a profile
// read that timed out. Polling goes on past them.
const PASSING = ["no_profile", "profile_unavailable"];

const mounted = new Set();
let debounce = null;
// Items this tab said "not interested" to: hidden at once, and on every re-render until serve (after ingest,
// a second or so later) leaves them out itself.
const dismissed = new Set();

function signature(result) {
  return `${result.headers["X-Personalization"]}|${result.items.map((item) => item.id).join(",")}`;
}

/** A small "Not interested" control: sends a dismiss event for the item and takes its card away. */
function notInterested(item, card) {
  const control = h(
    "button",
    {
      type: "button",
      class: "not-interested",
      dataset: { testid: "not-interested" },
      "aria-label": `Not interested in ${itemTitle(item)}`,
      title: "Not interested",
    },
    "×",
  );
  control.addEventListener("click", () => {
    dismissed.add(item.id);
    card.remove();
    track("dismiss", itemFields(item));
  });
  return control;
}

export function itemCard(item, testid = "fragment-item", dismissible = false) {
  const link = h(
    "a",
    { class: "card-link", href: `#/product/${encodeURIComponent(item.id)}`, dataset: { testid: `${testid}-link` } },
    h(
      "span",
      { class: "tile", style: { "--hue": hue(item.category) }, "aria-hidden": "true" },
      h("span", { class: "tile-mark" }, tileMark(item)),
    ),
    h("span", { class: "card-title" }, itemTitle(item)),
    h("span", { class: "card-meta" }, categoryLabel(item.category)),
    h("span", { class: "card-price" }, formatPrice(item.price)),
  );
  const card = h("li", { class: "card", dataset: { testid, itemId: item.id, category: item.category ?? "" } }, link);
  if (dismissible) card.append(notInterested(item, card));
  return card;
}

// What answered, as X-Personalization says it: the model for you, your segment, the model's items like the page
// item, an experiment arm's baseline (not the model: a reader must not take it for the model's work), popular.
function modeLabel(result) {
  if (result.mode === "experiment") return `Experiment: ${result.strategy ?? "baseline"}`;
  const labels = {
    personalized: "Personalized",
    segment: "Your segment",
    similar: "Similar items",
    trending: "Trending",
    fallback: "Popular",
  };
  return labels[result.mode] ?? result.mode;
}

export class Slot {
  /**
   * @param {{slot: string, title: string, k?: number, item?: string, journey?: string, catalog: object,
   *          describeSegment?: boolean, empty?: string, dismissible?: boolean}} options
   */
  constructor(options) {
    this.options = { k: 8, ...options };
    this.last = null;
    this.requests = 0;
    const testid = `slot-${options.slot}`;
    this.heading = h("h2", { class: "slot-title", id: `${testid}-title` }, options.title);
    this.badge = h("span", { class: "badge", dataset: { testid: `${testid}-mode` } }, "…");
    this.list = h("ol", { class: "cards", dataset: { testid: `${testid}-items` } });
    this.note = h("p", { class: "slot-note", dataset: { testid: `${testid}-note` } });
    this.debug = h("dl", {
      class: "debug",
      dataset: { testid: `${testid}-debug` },
      "aria-label": "Fragment response headers",
    });
    this.root = h(
      "section",
      {
        class: `slot slot-${options.slot}`,
        "aria-labelledby": `${testid}-title`,
        "aria-busy": "true",
        dataset: { testid, slot: options.slot, state: "loading" },
      },
      h("header", { class: "slot-head" }, this.heading, this.badge),
      this.note,
      this.list,
      this.debug,
    );
  }

  url() {
    const params = new URLSearchParams({ format: "json", k: String(this.options.k) });
    if (this.options.item) params.set("item", this.options.item);
    if (this.options.journey) params.set("journey", this.options.journey);
    return `/v1/fragments/${encodeURIComponent(this.options.slot)}?${params}`;
  }

  /** Fetch and render; resolves to whether the fragment changed to one worth stopping at. */
  async load() {
    // Without personalization consent the identity cookie is not sent at all: the fragment is non-personal
    // at once, not only once ingest has folded the consent change.
    const credentials = currentConsent().personalization ? "same-origin" : "omit";
    const request = ++this.requests;
    let result;
    try {
      const response = await fetch(this.url(), { credentials, headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const headers = Object.fromEntries(DEBUG_HEADERS.map((name) => [name, response.headers.get(name) ?? "—"]));
      result = { headers, ...(await response.json()) };
    } catch (error) {
      if (request !== this.requests) return false;
      this.root.dataset.state = "error";
      this.root.setAttribute("aria-busy", "false");
      const message = `Recommendations are unavailable right now (${error.message}).`;
      fill(this.list, h("li", { class: "slot-empty" }, message));
      return false;
    }
    if (request !== this.requests) return false; // a newer request is on its way; it will render
    const changed = this.last === null || signature(result) !== signature(this.last);
    this.last = result;
    this.render(result);
    return changed && !PASSING.some((reason) => result.headers["X-Personalization"].endsWith(`reason=${reason}`));
  }

  render(result) {
    const reason = result.headers["X-Personalization"].split(/;\s*reason=/)[1];
    Object.assign(this.root.dataset, {
      state: "ready",
      mode: result.mode,
      reason: reason ?? "",
      segment: result.segment ?? "",
    });
    this.root.setAttribute("aria-busy", "false");
    this.badge.textContent = modeLabel(result);
    this.badge.className = `badge badge-${result.mode}`;
    if (this.options.describeSegment) {
      this.heading.textContent = result.segment ? `Popular with ${result.segment}` : this.options.title;
    }
    const declined = storedConsent()?.personalization === false;
    this.note.textContent = declined ? "You chose no personalization: these are the shop's picks for everyone." : "";
    // "Not interested" on a person's own recommendations (a shared slot is the same for everyone).
    const dismissible = this.options.dismissible && ["personalized", "experiment"].includes(result.mode);
    const items = result.items
      .filter((item) => !dismissed.has(item.id))
      .map((item) => itemCard(describe(this.options.catalog, item), "fragment-item", dismissible));
    const empty = h("li", { class: "slot-empty" }, this.options.empty ?? "Nothing to show yet.");
    fill(this.list, items.length ? items : empty);
    fill(
      this.debug,
      DEBUG_HEADERS.map((name) =>
        h(
          "div",
          { dataset: { testid: `debug-${name.toLowerCase()}` } },
          h("dt", {}, name),
          h("dd", {}, result.headers[name]),
        ),
      ),
    );
  }
}

/** Create a slot, remember it for refreshes, and load it. */
export function mountSlot(options) {
  const slot = new Slot(options);
  mounted.add(slot);
  slot.load();
  return slot.root;
}

/** The page changed: slots of the previous view are no longer refreshed. */
export function unmountSlots() {
  mounted.clear();
}

async function refreshUntilChanged(slot, polls) {
  if (!mounted.has(slot)) return;
  const changed = await slot.load();
  if (!changed && polls > 0) setTimeout(() => refreshUntilChanged(slot, polls - 1), POLL_MS);
}

/** After an action: re-fetch every mounted slot shortly, and keep looking until each has changed. */
export function refreshSlots() {
  clearTimeout(debounce);
  debounce = setTimeout(() => {
    for (const slot of mounted) refreshUntilChanged(slot, POLLS_AFTER_ACTION);
  }, DEBOUNCE_MS);
}
