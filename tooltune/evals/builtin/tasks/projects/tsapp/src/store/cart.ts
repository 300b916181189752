import { create } from "zustand";
import type { CartLine } from "@/types";

interface CartState {
  lines: CartLine[];
  add: (productId: string) => void;
  clear: () => void;
}

export const useCart = create<CartState>((set) => ({
  lines: [],
  add: (productId) =>
    set((state) => {
      const existing = state.lines.find((l) => l.productId === productId);
      if (existing) {
        return { lines: state.lines.map((l) => (l === existing ? { ...l, quantity: l.quantity + 1 } : l)) };
      }
      return { lines: [...state.lines, { productId, quantity: 1 }] };
    }),
  clear: () => set({ lines: [] }),
}));
