// The visitor's consent, kept in this browser only, and the banner that asks for it.
import { h } from "./dom.js";

const KEY = "shop.consent";
const NONE = Object.freeze({ analytics: false, personalization: false });

export function storedConsent() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY));
    if (value && typeof value.analytics === "boolean" && typeof value.personalization === "boolean") return value;
  } catch {
    // A corrupt entry counts as no answer: the banner asks again.
  }
  return null;
}

/** What travels with every event; nothing is consented until the visitor answers. */
export function currentConsent() {
  const stored = storedConsent();
  return stored ? { analytics: stored.analytics, personalization: stored.personalization } : { ...NONE };
}

/** Keep the answer, and return how and when it was given: that travels with the consent event, for the record. */
function save(choice, action) {
  const decision = { action, decided_at: new Date().toISOString() };
  localStorage.setItem(KEY, JSON.stringify({ ...choice, ...decision }));
  return decision;
}

/**
 * Show the banner; `onChange(previous, next, decision)` runs after the visitor answers.
 * It is a non-modal dialog: the shop stays usable, and nothing is tracked until an answer is given.
 * Nothing is pre-ticked (a pre-ticked box is not consent: CJEU, Planet49, C-673/17): a first visitor sees both
 * boxes empty, and "Decline all" and "Accept all" look the same and carry the same weight.
 */
export function openConsentBanner(onChange) {
  document.querySelector("#consent-banner")?.remove();
  const previous = currentConsent();
  const initial = storedConsent() ?? NONE;
  const analytics = h("input", { type: "checkbox", id: "consent-analytics", dataset: { testid: "consent-analytics" } });
  const personalization = h("input", {
    type: "checkbox",
    id: "consent-personalization",
    dataset: { testid: "consent-personalization" },
  });
  analytics.checked = initial.analytics;
  personalization.checked = initial.personalization;

  const button = (label, testid, kind, action, choice) => {
    const node = h("button", { type: "button", class: `button ${kind}`, dataset: { testid } }, label);
    node.addEventListener("click", () => {
      const next = choice();
      const decision = save(next, action);
      banner.remove();
      onChange(previous, next, decision);
    });
    return node;
  };

  const banner = h(
    "section",
    {
      id: "consent-banner",
      class: "consent",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": "consent-title",
      "aria-describedby": "consent-text",
      dataset: { testid: "consent-banner" },
    },
    h("h2", { id: "consent-title" }, "Your privacy choices"),
    h(
      "p",
      { id: "consent-text" },
      "We record what you view and buy in this shop to recommend products. Choose what we may use; ",
      "you can change it at any time under “Privacy settings”.",
    ),
    h(
      "div",
      { class: "consent-options" },
      h(
        "label",
        { for: "consent-analytics" },
        analytics,
        h(
          "span",
          {},
          h("strong", {}, "Analytics"),
          " — record your visits and clicks (needed for anything based on your activity).",
        ),
      ),
      h(
        "label",
        { for: "consent-personalization" },
        personalization,
        h("span", {}, h("strong", {}, "Personalization"), " — show recommendations based on your own activity."),
      ),
    ),
    h(
      "div",
      { class: "consent-actions" },
      // The same style for both answers, side by side; saving the boxes as ticked is the third way.
      button("Decline all", "consent-decline-all", "choice", "decline_all", () => ({ ...NONE })),
      button("Accept all", "consent-accept-all", "choice", "accept_all", () => ({
        analytics: true,
        personalization: true,
      })),
      button("Save choices", "consent-save", "secondary", "save_choices", () => ({
        analytics: analytics.checked,
        personalization: personalization.checked,
      })),
    ),
  );
  document.body.append(banner);
  // Focus goes to the question, not to either answer: no answer is the default.
  const title = banner.querySelector("#consent-title");
  title.tabIndex = -1;
  title.focus();
}
