// The cart, kept in localStorage so it survives reloads; the server learns of it only through events.

const KEY = "shop.cart";
const listeners = new Set();

export function cartLines() {
  try {
    const lines = JSON.parse(localStorage.getItem(KEY));
    return Array.isArray(lines) ? lines : [];
  } catch {
    return [];
  }
}

function store(lines) {
  localStorage.setItem(KEY, JSON.stringify(lines));
  for (const listener of listeners) listener(lines);
}

export function onCartChange(listener) {
  listeners.add(listener);
}

export function addToCart(item, quantity = 1) {
  const lines = cartLines();
  const line = lines.find((candidate) => candidate.id === item.id);
  if (line) line.quantity += quantity;
  else lines.push({ id: item.id, category: item.category, brand: item.brand, price: item.price, quantity });
  store(lines);
}

export function removeFromCart(id) {
  store(cartLines().filter((line) => line.id !== id));
}

export function clearCart() {
  store([]);
}

export function cartCount() {
  return cartLines().reduce((sum, line) => sum + line.quantity, 0);
}

export function cartTotal() {
  return cartLines().reduce((sum, line) => sum + (line.price ?? 0) * line.quantity, 0);
}
