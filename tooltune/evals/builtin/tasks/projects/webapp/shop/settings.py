"""Settings for the dev server and the handlers."""

HOST = "127.0.0.1"
PORT = 8123
DEBUG = False
PAGE_SIZE = 20
TAX_RATE = 0.0825
CURRENCY = "USD"
