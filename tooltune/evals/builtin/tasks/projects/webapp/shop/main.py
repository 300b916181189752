"""Build the app and, when run directly, serve it."""

from shop import handlers
from shop.middleware import with_request_id
from shop.router import Router
from shop.settings import HOST, PORT


class App:
    def __init__(self, router):
        self.router = router
        self.handle = with_request_id(router.dispatch)


def create_app():
    router = Router()
    router.add("GET", "/products", handlers.list_products)
    router.add("GET", "/products/search", handlers.search_products)
    router.add("GET", "/products/<product_id>", handlers.get_product)
    router.add("GET", "/cart", handlers.show_cart)
    router.add("POST", "/cart", handlers.add_to_cart)
    return App(router)


if __name__ == "__main__":
    print(f"minishop would listen on http://{HOST}:{PORT} (no server in this build)")
