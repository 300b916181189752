import { useCart } from "@/store/cart";

export function CartBadge() {
  const count = useCart((s) => s.lines.reduce((n, l) => n + l.quantity, 0));
  if (count === 0) return null;
  return <span className="cart-badge">{count > 99 ? "99+" : count}</span>;
}
