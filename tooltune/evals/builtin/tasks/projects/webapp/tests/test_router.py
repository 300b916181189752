from shop.http import Request, json_response
from shop.router import Router


def make_router():
    router = Router()
    router.add("GET", "/items/<item_id>", lambda req, item_id: json_response({"id": item_id}))
    return router


def test_path_parameter():
    response = make_router().dispatch(Request("GET", "/items/42"))
    assert response.status == 200
    assert response.json() == {"id": "42"}


def test_unknown_path_is_404():
    assert make_router().dispatch(Request("GET", "/nope")).status == 404


def test_wrong_method_is_405():
    assert make_router().dispatch(Request("DELETE", "/items/1")).status == 405
