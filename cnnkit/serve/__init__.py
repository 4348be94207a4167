"""``cnnkit serve``: a model behind HTTP - FastAPI + uvicorn, with a web page at ``/``.

    >>> from cnnkit.serve import ServeConfig, create_app
    >>> app = create_app(ServeConfig(model="efficientnet_lite0"))  # doctest: +SKIP

See :mod:`cnnkit.serve.app` for the routes and :mod:`cnnkit.serve.limits` for the upload limits.
"""

from cnnkit.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
