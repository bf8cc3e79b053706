// The shop's product list (/shop/catalog.json, cut by the edge from the live model version) and how items read.

let loaded = null;

export async function loadCatalog() {
  if (loaded) return loaded;
  const response = await fetch("/shop/catalog.json", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`the catalog is unavailable (HTTP ${response.status})`);
  const data = await response.json();
  const byId = new Map(data.items.map((item) => [item.id, item]));
  loaded = { ...data, byId };
  return loaded;
}

// Items fragments showed that the listed catalog lacks (the recommender knows the whole catalog): kept so their
// product page can still show category and price.
const seen = new Map();

/** A fragment or cart item with what the catalog knows about it (brand), remembered for its product page. */
export function describe(catalog, item) {
  const known = catalog?.byId.get(item.id) ?? seen.get(item.id) ?? {};
  const described = { ...known, ...item, brand: known.brand ?? item.brand ?? null };
  if (!catalog?.byId.has(item.id) && described.category) seen.set(item.id, described);
  return described;
}

/** Everything known about an item id (listed, or seen in a fragment); a bare item otherwise. */
export function lookup(catalog, id) {
  return catalog.byId.get(id) ?? seen.get(id) ?? { id, category: null, price: null, brand: null };
}

// REES46 categories are dotted paths ("electronics.audio.headphone"); a fifth of the data has only a numeric
// category id, which the dataset adapter writes as "cat:<id>".
export function isCoded(category) {
  return typeof category === "string" && category.startsWith("cat:");
}

function words(part) {
  const text = part.replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function categoryLabel(category) {
  if (!category) return "Uncategorised";
  if (isCoded(category)) return `Category ${category.slice(-6)}`;
  return words(category.split(".").at(-1));
}

export function categoryTrail(category) {
  if (!category || isCoded(category)) return [categoryLabel(category)];
  return category.split(".").map(words);
}

export function topLevel(category) {
  if (!category || isCoded(category)) return category ?? "";
  return category.split(".")[0];
}

export function itemTitle(item) {
  if (!item.category || isCoded(item.category)) return item.brand ? `${words(item.brand)} item` : `Item ${item.id}`;
  const kind = categoryLabel(item.category);
  return item.brand ? `${words(item.brand)} ${kind.toLowerCase()}` : kind;
}

/** The two letters on an item's tile: its brand's, else its category's; "#" where neither has a name. */
export function tileMark(item) {
  if (item.brand) return item.brand.slice(0, 2).toUpperCase();
  if (!item.category || isCoded(item.category)) return "#";
  return categoryLabel(item.category).slice(0, 2).toUpperCase();
}

const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

export function formatPrice(price) {
  return typeof price === "number" ? money.format(price) : "—";
}

/** A stable hue per category, so a category's tiles share a colour from page to page. */
export function hue(category) {
  let hash = 7;
  for (const char of category || "item") hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return hash % 360;
}
