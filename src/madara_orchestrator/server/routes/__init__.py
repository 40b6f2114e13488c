"""The API's routes, one module per area; each gives its ``Endpoint`` declarations (``server/http.py``)."""
