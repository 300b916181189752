"""JSON handlers. Each takes the request plus the path parameters."""

from shop.http import error, json_response
from shop.settings import PAGE_SIZE
from shop.store import PRODUCTS, Cart

CART = Cart()


def list_products(request):
    page = int(request.query.get("page", 1))
    items = list(PRODUCTS.values())
    start = (page - 1) * PAGE_SIZE
    return json_response({"page": page, "items": items[start : start + PAGE_SIZE]})


def get_product(request, product_id):
    product = PRODUCTS.get(product_id)
    if product is None:
        return error(404, f"no product {product_id}")
    return json_response(product)


def search_products(request):
    term = request.query.get("q", "").lower()
    # TODO: paginate search results like list_products does
    found = [p for p in PRODUCTS.values() if term in p["name"].lower()]
    return json_response({"items": found})


def add_to_cart(request):
    try:
        CART.add(request.body["product_id"], int(request.body.get("quantity", 1)))
    except KeyError:
        return error(400, "unknown or missing product_id")
    except ValueError as e:
        return error(400, str(e))
    return json_response({"items": CART.items, "total": CART.total()}, status=201)


def show_cart(request):
    return json_response({"items": CART.items, "total": CART.total()})
