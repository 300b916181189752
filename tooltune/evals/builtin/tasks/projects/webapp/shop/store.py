"""In-memory products and carts."""

from shop.settings import TAX_RATE

PRODUCTS = {
    "p1": {"id": "p1", "name": "Espresso beans 1kg", "price": 24.0},
    "p2": {"id": "p2", "name": "Ceramic mug", "price": 9.5},
    "p3": {"id": "p3", "name": "Hand grinder", "price": 59.0},
    "p4": {"id": "p4", "name": "Paper filters (100)", "price": 4.25},
}


class Cart:
    def __init__(self):
        self.items = {}  # product id -> quantity

    def add(self, product_id, quantity=1):
        if product_id not in PRODUCTS:
            raise KeyError(product_id)
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        self.items[product_id] = self.items.get(product_id, 0) + quantity

    def subtotal(self):
        return sum(PRODUCTS[pid]["price"] * qty for pid, qty in self.items.items())

    def total(self):
        return round(self.subtotal() * (1 + TAX_RATE), 2)
