// The storefront: hash routes, views, and the wiring between actions, events and fragment slots.
import { addToCart, cartCount, cartLines, cartTotal, clearCart, onCartChange, removeFromCart } from "./cart.js";
import {
  categoryLabel,
  categoryTrail,
  describe,
  formatPrice,
  hue,
  itemTitle,
  loadCatalog,
  lookup,
  tileMark,
} from "./catalog.js";
import { openConsentBanner, storedConsent } from "./consent.js";
import { fill, h } from "./dom.js";
import { itemCard, mountSlot, refreshSlots, unmountSlots } from "./slots.js";
import { buildEvent, itemFields, onTracked, send, track } from "./tracker.js";

const SHOP = "Edge Market";
const GRID_PAGE = 48;
const main = document.querySelector("#main");
let catalog = null;
let firstRender = true;

// -- small pieces ---------------------------------------------------------------------------------

const productHref = (id) => `#/product/${encodeURIComponent(id)}`;
const categoryHref = (name) => `#/category/${encodeURIComponent(name)}`;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function button(label, testid, kind = "primary", attributes = {}) {
  return h("button", { type: "button", class: `button ${kind}`, dataset: { testid }, ...attributes }, label);
}

function heading(text, testid) {
  return h("h1", { tabindex: "-1", class: "page-title", dataset: { testid } }, text);
}

function status(testid) {
  return h("p", { class: "status", role: "status", "aria-live": "polite", dataset: { testid } });
}

function tile(item, size) {
  return h(
    "span",
    { class: `tile tile-${size}`, style: { "--hue": hue(item.category) }, "aria-hidden": "true" },
    size === "small" ? null : h("span", { class: "tile-mark" }, tileMark(item)),
  );
}

function forYou() {
  return mountSlot({ slot: "for-you", title: "Recommended for you", catalog, dismissible: true });
}

function trendingNow() {
  return mountSlot({ slot: "trending", title: "Trending now", k: 4, catalog });
}

// -- views ----------------------------------------------------------------------------------------

function categoryChip(name, label, count, current) {
  const link = h(
    "a",
    {
      class: "chip",
      href: name ? categoryHref(name) : "#/",
      "aria-current": name === current ? "page" : null,
      dataset: { testid: "category-chip", category: name ?? "" },
    },
    label,
    count === undefined ? null : h("span", { class: "chip-count" }, String(count)),
  );
  return h("li", {}, link);
}

function productGrid(items) {
  const grid = h("ol", { class: "cards grid", dataset: { testid: "product-grid" } });
  const more = button("Show more", "show-more", "secondary");
  let shown = 0;
  const showMore = () => {
    grid.append(...items.slice(shown, shown + GRID_PAGE).map((item) => itemCard(item, "product-card")));
    shown = Math.min(items.length, shown + GRID_PAGE);
    more.hidden = shown >= items.length;
  };
  more.addEventListener("click", showMore);
  showMore();
  return [grid, h("div", { class: "more" }, more)];
}

function home(category = null) {
  const entry = category ? catalog.categories.find((candidate) => candidate.name === category) : null;
  const items = entry ? entry.item_ids.map((id) => catalog.byId.get(id)).filter(Boolean) : catalog.items;
  const chips = catalog.categories.map((c) => categoryChip(c.name, categoryLabel(c.name), c.items, category));
  document.title = entry ? `${categoryLabel(category)} · ${SHOP}` : SHOP;
  const banner = { slot: "segment-banner", title: "Popular right now", k: 4, catalog, describeSegment: true };
  const title = entry ? `${categoryLabel(category)} at ${SHOP}` : SHOP;
  const listed = entry ? categoryTrail(category).join(" › ") : "All products";
  const all = categoryChip(null, "All", undefined, category);
  const filter = h("ul", { class: "chips", dataset: { testid: "category-filter" } }, all, chips);
  return [
    h("h1", { class: "page-title visually-hidden", tabindex: "-1" }, title),
    h("div", { class: "hero" }, mountSlot(banner)),
    forYou(),
    trendingNow(),
    h(
      "section",
      { class: "catalog", "aria-labelledby": "catalog-title" },
      h("h2", { id: "catalog-title", class: "section-title" }, listed),
      h("nav", { "aria-label": "Categories" }, filter),
      productGrid(items),
    ),
  ];
}

function product(id) {
  const item = lookup(catalog, id);
  track("view_product", itemFields(item));
  const added = status("add-status");
  const add = button("Add to cart", "add-to-cart");
  add.addEventListener("click", () => {
    addToCart(item);
    track("add_to_cart", itemFields(item));
    added.textContent = `Added to your cart (${plural(cartCount(), "item")}).`;
  });
  const trail = categoryTrail(item.category).join(" › ");
  document.title = `${itemTitle(item)} · ${SHOP}`;
  return [
    h(
      "nav",
      { class: "breadcrumb", "aria-label": "Breadcrumb" },
      h("a", { href: "#/" }, "Shop"),
      item.category ? [" › ", h("a", { href: categoryHref(item.category) }, trail)] : null,
    ),
    h(
      "article",
      { class: "product", dataset: { testid: "product-page", itemId: item.id, category: item.category ?? "" } },
      tile(item, "large"),
      h(
        "div",
        { class: "product-info" },
        heading(itemTitle(item), "product-title"),
        h("p", { class: "product-price", dataset: { testid: "product-price" } }, formatPrice(item.price)),
        h(
          "dl",
          { class: "facts" },
          [h("dt", {}, "Brand"), h("dd", { class: "brand" }, item.brand ?? "—")],
          [h("dt", {}, "Category"), h("dd", {}, trail)],
          [h("dt", {}, "Item"), h("dd", {}, item.id)],
        ),
        add,
        added,
      ),
    ),
    mountSlot({ slot: "because-you-viewed", title: "Because you viewed this", item: item.id, catalog }),
    forYou(),
  ];
}

function cartLine(line, removable) {
  const item = describe(catalog, line);
  let remove = null;
  if (removable) {
    remove = button("Remove", "remove-from-cart", "link", { "aria-label": `Remove ${itemTitle(item)}` });
    remove.addEventListener("click", () => {
      removeFromCart(line.id);
      track("remove_from_cart", itemFields(item, line.quantity));
      render();
    });
  }
  return h(
    "li",
    { class: "line", dataset: { testid: removable ? "cart-line" : "checkout-line", itemId: line.id } },
    tile(item, "small"),
    h("a", { href: productHref(line.id) }, itemTitle(item)),
    h("span", { class: "line-quantity" }, `× ${line.quantity}`),
    h("span", { class: "line-price" }, formatPrice((line.price ?? 0) * line.quantity)),
    remove,
  );
}

function cart() {
  const lines = cartLines();
  document.title = `Your cart · ${SHOP}`;
  const contents = lines.length
    ? [
        h("ul", { class: "lines" }, lines.map((line) => cartLine(line, true))),
        h("p", { class: "total" }, "Total ", h("strong", {}, formatPrice(cartTotal()))),
        h("a", { class: "button primary", href: "#/checkout", dataset: { testid: "go-checkout" } }, "Go to checkout"),
      ]
    : h("p", { class: "empty" }, "Your cart is empty. ", h("a", { href: "#/" }, "Browse products"));
  const panel = h("section", { class: "panel", dataset: { testid: "cart-view" } }, heading("Your cart", "cart-title"));
  panel.append(...[contents].flat());
  return [panel, forYou()];
}

function checkout() {
  const lines = cartLines();
  const done = status("order-confirmation");
  const buy = button("Buy now", "buy-button", "primary", { disabled: lines.length === 0 });
  const summary = h(
    "div",
    {},
    lines.length
      ? [
          h("ul", { class: "lines" }, lines.map((line) => cartLine(line, false))),
          h("p", { class: "total" }, "To pay ", h("strong", {}, formatPrice(cartTotal()))),
        ]
      : h("p", { class: "empty" }, "Your cart is empty."),
  );
  buy.addEventListener("click", async () => {
    buy.disabled = true;
    const bought = cartLines();
    const purchases = bought.map((line) => buildEvent("purchase", itemFields(describe(catalog, line), line.quantity)));
    const answer = await send(purchases);
    clearCart();
    fill(summary, h("p", { class: "empty" }, "Nothing left to pay for."));
    const recorded = answer && answer.status < 300 ? "" : " (not recorded for recommendations)";
    done.textContent = `Thank you! Your order of ${plural(bought.length, "item")} is placed${recorded}.`;
  });
  document.title = `Checkout · ${SHOP}`;
  const panel = h("section", { class: "panel", dataset: { testid: "checkout-view" } });
  panel.append(heading("Checkout", "checkout-title"), summary, buy, done);
  return [panel, mountSlot({ slot: "checkout", title: "Complete your order", journey: "checkout", catalog })];
}

function notFound() {
  document.title = `Not found · ${SHOP}`;
  return h("section", { class: "panel" }, heading("Page not found"), h("a", { href: "#/" }, "Back to the shop"));
}

// -- routing and start ----------------------------------------------------------------------------

const ROUTES = [
  [/^\/?$/, () => home()],
  [/^\/category\/(.+)$/, (match) => home(decodeURIComponent(match[1]))],
  [/^\/product\/(.+)$/, (match) => product(decodeURIComponent(match[1]))],
  [/^\/cart$/, () => cart()],
  [/^\/checkout$/, () => checkout()],
];

function render() {
  const path = location.hash.replace(/^#/, "") || "/";
  unmountSlots();
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  fill(main, route ? route[1](path.match(route[0])) : notFound());
  main.dataset.route = path;
  if (!firstRender) {
    // A new page for screen readers too: focus its title, as a full page load would start there.
    window.scrollTo(0, 0);
    main.querySelector(".page-title")?.focus({ preventScroll: true });
  }
  firstRender = false;
}

function pageView() {
  // A product page sends view_product, which says more; every other page is a page_view.
  if (!(main.dataset.route ?? "").startsWith("/product/")) track("page_view");
}

async function consentChanged(previous, next, decision) {
  // A withdrawal must reach the profile; a first "decline all" sends nothing at all. The answer's action and
  // time go with it, so the profile keeps a record of what was agreed and when.
  if (previous.analytics || next.analytics) await send([buildEvent("consent", { decision }, next)]);
  refreshSlots();
}

function updateCartCount() {
  document.querySelector("[data-testid=cart-count]").textContent = String(cartCount());
}

async function start() {
  fill(main, h("p", { class: "loading" }, "Loading the shop…"));
  try {
    catalog = await loadCatalog();
  } catch (error) {
    const closed = h("h1", {}, "The shop is closed for a moment");
    fill(main, h("section", { class: "panel" }, closed, h("p", {}, error.message)));
    return;
  }
  onTracked(() => refreshSlots());
  onCartChange(updateCartCount);
  updateCartCount();
  const privacy = document.querySelector("[data-testid=open-consent]");
  privacy.addEventListener("click", () => openConsentBanner(consentChanged));
  window.addEventListener("hashchange", () => {
    render();
    pageView();
  });
  render();
  if (storedConsent() === null) openConsentBanner(consentChanged);
  else pageView();
  document.body.dataset.ready = "true";
}

start();
