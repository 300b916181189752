import pytest
from shop import handlers
from shop.http import Request
from shop.main import create_app
from shop.store import Cart


@pytest.fixture(autouse=True)
def fresh_cart(monkeypatch):
    monkeypatch.setattr(handlers, "CART", Cart())


def test_list_products():
    response = create_app().handle(Request("GET", "/products"))
    assert response.status == 200
    assert len(response.json()["items"]) == 4


def test_get_product_and_missing():
    app = create_app()
    assert app.handle(Request("GET", "/products/p2")).json()["name"] == "Ceramic mug"
    assert app.handle(Request("GET", "/products/zz")).status == 404


def test_search():
    response = create_app().handle(Request("GET", "/products/search", query={"q": "MUG"}))
    assert [p["id"] for p in response.json()["items"]] == ["p2"]


def test_add_to_cart_total_includes_tax():
    response = create_app().handle(Request("POST", "/cart", body={"product_id": "p1", "quantity": 2}))
    assert response.status == 201
    assert response.json()["total"] == 51.96


def test_request_id_header():
    response = create_app().handle(Request("GET", "/cart", headers={"X-Request-Id": "abc"}))
    assert response.headers["X-Request-Id"] == "abc"
