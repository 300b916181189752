import { createRoot } from "react-dom/client";
import { CartBadge } from "@/components/CartBadge";

createRoot(document.getElementById("root")!).render(
  <header>
    <h1>Shoplane</h1>
    <CartBadge />
  </header>
);
