import type { Product } from "@/types";
import { apiFetch } from "./client";

export function listProducts(page = 1): Promise<{ items: Product[] }> {
  return apiFetch(`/products?page=${page}`);
}

export function getProduct(id: string): Promise<Product> {
  return apiFetch(`/products/${encodeURIComponent(id)}`);
}
