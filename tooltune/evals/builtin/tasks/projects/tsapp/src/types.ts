export interface Product {
  id: string;
  name: string;
  price: number;
  currency: "USD" | "EUR";
}

export interface CartLine {
  productId: string;
  quantity: number;
}
