"""The FastAPI application behind ``cnnkit serve``.

Routes: ``POST /predict`` (image -> top-k JSON), ``POST /explain`` (image -> Grad-CAM
overlay PNG), ``POST /dogapp`` (image -> the dog app's answer), ``GET /health``,
``GET /models``, the OpenAPI docs at ``/docs`` and the web page at ``/``.

The model is loaded once, when the app is built (a bad ``--model`` fails the command
before the server binds). Decoding and the forward pass run in worker threads
(``run_in_threadpool``), never on the event loop; a semaphore bounds how many uploads are
decoded at once (memory), and the runtime's lock serialises forward passes (cores).
Every error is JSON ``{"error": "..."}`` naming the problem and the fix, with a 4xx status
for anything the client sent.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from cnnkit.errors import CnnkitError
from cnnkit.runtime import Loaded, TorchRuntime, load_onnx, load_runtime, load_torch_model
from cnnkit.runtime.images import DEFAULT_MAX_PIXELS, ImageRejected, display_image, load_upload
from cnnkit.serve.limits import BodyLimit, too_large_message

STATIC = Path(__file__).parent / "static"
CONFIG_ENV = "CNNKIT_SERVE_CONFIG"  # hands the config to uvicorn's worker processes


@dataclass
class ServeConfig:
    """What ``cnnkit serve`` was asked for (everything but host, port and workers)."""

    model: str = "efficientnet_lite0"
    runtime: str = "torch"
    compile: bool = False  # torch.compile the torch model before serving
    max_upload_mb: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    topk: int = 5
    concurrency: int = 0  # uploads decoded at once; 0 = 2 x CPUs
    onnx_file: str | None = None  # already exported (uvicorn workers reuse the parent's export)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class Service:
    """The loaded model and the optional explainers, shared by every request."""

    def __init__(self, config: ServeConfig, loaded: Loaded | None = None) -> None:
        self.config = config
        if loaded is None and config.onnx_file:
            loaded = load_onnx(config.onnx_file)
            if Path(config.model).suffix != ".onnx":  # heat maps need the torch model too
                loaded.info["torch_model"] = load_torch_model(config.model)[0]
        self.loaded = loaded or load_runtime(config.model, config.runtime, compile=config.compile)
        runtime = self.loaded.runtime
        self.torch_model = (
            runtime.model if isinstance(runtime, TorchRuntime) else self.loaded.info.get("torch_model")
        )
        self.model_lock = runtime.lock if isinstance(runtime, TorchRuntime) else threading.Lock()
        c, (h, w) = self.loaded.preprocess.channels, self.loaded.preprocess.size
        # warm-up (the race, or the compile) before serving
        runtime.predict(np.zeros((1, c, h, w), np.float32))
        self._dogapp: Any = None
        self._dogapp_lock = threading.Lock()
        self.started = time.time()

    def predict(self, data: bytes, name: str, topk: int) -> dict[str, Any]:
        start = time.perf_counter()
        x = load_upload(data, self.loaded.preprocess, name, self.config.max_pixels)
        decoded = time.perf_counter()
        row = self.loaded.topk(self.loaded.runtime.predict(x[None]), topk)[0]
        done = time.perf_counter()
        return {
            "model": self.loaded.name,
            "runtime": self.loaded.runtime.name,
            "topk": row,
            "ms": {"decode": round(1e3 * (decoded - start), 2), "model": round(1e3 * (done - decoded), 2)},
        }

    def explain(self, data: bytes, name: str, target: int | None) -> bytes:
        from cnnkit.explain import class_activation_map, overlay

        if self.torch_model is None:
            raise HTTPException(
                501, "heat maps need the PyTorch model; start the server with --runtime torch."
            )
        if target is not None and not 0 <= target < len(self.loaded.classes):
            raise HTTPException(422, f"class {target} is out of range 0..{len(self.loaded.classes) - 1}.")
        x = load_upload(data, self.loaded.preprocess, name, self.config.max_pixels)[None]
        with self.model_lock:
            res = class_activation_map(self.torch_model, x, "gradcam", None, target)
        from PIL import Image

        pre = self.loaded.preprocess
        if pre.resize == "stretch" and pre.scaled_size == pre.size:
            picture = display_image(data)  # the map covers the whole photo: draw it on the photo
        else:  # a centre crop: draw it on what the model saw
            mean, std = np.asarray(pre.mean)[:, None, None], np.asarray(pre.std)[:, None, None]
            seen = np.clip(x[0].numpy() * std + mean, 0, 1).transpose(1, 2, 0)
            picture = Image.fromarray((np.repeat(seen, 3 // seen.shape[2], axis=2) * 255).astype(np.uint8))

        cam = Image.fromarray((res["cam"][0].numpy() * 255).astype(np.uint8)).resize(
            picture.size, Image.BILINEAR
        )
        mixed = overlay(np.asarray(picture, dtype=np.float32) / 255, np.asarray(cam, dtype=np.float32) / 255)
        buf = io.BytesIO()
        Image.fromarray((mixed * 255).round().astype(np.uint8)).save(buf, "PNG")
        return buf.getvalue()

    def dogapp(self, data: bytes, name: str) -> dict[str, Any]:
        try:
            from cnnkit.apps import DogApp
        except ImportError:
            raise HTTPException(
                501, "the dog app is not installed in this cnnkit (cnnkit.apps.DogApp)."
            ) from None
        load_upload(data, self.loaded.preprocess, name, self.config.max_pixels)  # the same upload checks
        with self._dogapp_lock:  # built on first use (face detector + backbone), then kept
            if self._dogapp is None:
                self._dogapp = DogApp()
            result = dict(self._dogapp(data))
        result["image"] = name
        return result

    def describe(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "model": loaded.name,
            "source": loaded.source,
            "runtime": loaded.runtime.name,
            "num_classes": len(loaded.classes),
            "classes": loaded.classes if len(loaded.classes) <= 100 else loaded.classes[:100] + ["..."],
            "preprocess": loaded.preprocess.to_dict(),
            "explain": self.torch_model is not None and _has("cnnkit.explain"),
            "dogapp": _has("cnnkit.apps"),
        }


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        if err.get("type") == "missing" and where == "file":
            return "no image in the request; send it as multipart/form-data field 'file' (curl -F file=@photo.jpg)."
        parts.append(f"{where}: {err.get('msg')}")
    return "invalid request: " + "; ".join(parts) + ". See /docs for the expected fields."


def create_app(config: ServeConfig | None = None, loaded: Loaded | None = None) -> FastAPI:
    """Build the app; loads the model now (once) unless ``loaded`` is given."""
    config = config or ServeConfig()
    service = Service(config, loaded)
    limit = asyncio.Semaphore(config.concurrency or 2 * (os.cpu_count() or 1))
    app = FastAPI(
        title="cnnkit serve",
        version=_version(),
        description="Image classification with a cnnkit model: top-k classes, Grad-CAM heat maps, the dog app.",
    )
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(ImageRejected)
    async def _rejected(_: Request, exc: ImageRejected) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(CnnkitError)
    async def _user(_: Request, exc: CnnkitError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__}: {exc}); the server keeps running.")

    async def read(file: UploadFile) -> tuple[bytes, str]:
        data = await file.read(config.max_upload_bytes + 1)
        await file.close()
        if len(data) > config.max_upload_bytes:
            raise HTTPException(413, too_large_message(config.max_upload_bytes))
        return data, (file.filename or "upload")[:200]

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", summary="liveness and what is loaded")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": service.loaded.name,
            "runtime": service.loaded.runtime.name,
            "uptime_s": round(time.time() - service.started, 1),
        }

    @app.get(
        "/models", summary="the loaded model, its classes and preprocessing; the zoo's pretrained models"
    )
    async def models() -> dict[str, Any]:
        from cnnkit.models import models_with_weights

        return {
            "loaded": service.describe(),
            "pretrained": list(models_with_weights()),
            "config": asdict(config),
        }

    @app.post("/predict", summary="top-k classes of an uploaded image")
    async def predict(
        file: UploadFile = File(..., description="the image (JPEG, PNG, BMP, GIF, TIFF, WebP)"),
        topk: int = Query(config.topk, ge=1, le=1000, description="how many classes to return"),
    ) -> dict[str, Any]:
        data, name = await read(file)
        async with limit:
            result = await run_in_threadpool(service.predict, data, name, topk)
        return {"image": name, **result}

    @app.post(
        "/explain",
        summary="Grad-CAM heat map of an uploaded image, as a PNG overlay",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    async def explain(
        file: UploadFile = File(...),
        target: int | None = Query(None, ge=0, description="class index to explain (default: the top-1)"),
    ) -> Response:
        if not _has("cnnkit.explain"):
            raise HTTPException(501, "heat maps are not available: this cnnkit has no cnnkit.explain module.")
        data, name = await read(file)
        async with limit:
            png = await run_in_threadpool(service.explain, data, name, target)
        return Response(png, media_type="image/png")

    @app.post("/dogapp", summary="dog, human or neither, and the breed (cnnkit.apps.DogApp)")
    async def dogapp(file: UploadFile = File(...)) -> dict[str, Any]:
        data, name = await read(file)
        async with limit:
            return await run_in_threadpool(service.dogapp, data, name)

    return app


def _version() -> str:
    from cnnkit import __version__

    return __version__


def app_from_env() -> FastAPI:
    """The app factory uvicorn's worker processes call (``--workers N``): config from the environment."""
    import json

    return create_app(ServeConfig(**json.loads(os.environ.get(CONFIG_ENV, "{}"))))
