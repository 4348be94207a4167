"""``cnnkit serve``: the real server (uvicorn in a subprocess on a loopback port), real photos.

Answers match ``cnnkit predict`` on the same file; hostile and broken uploads get 4xx JSON
errors naming the problem, and after 200 of them the server still answers and its memory
has not grown beyond a bound. The browser test is tests/test_browser.py; the load test
(slow) is at the end.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

httpx = pytest.importorskip("httpx")
from cnnkit.serve.testing import ServerProcess  # noqa: E402

MAX_MB = 2
MAX_PIXELS = 20_000_000
CATS = {"Egyptian cat", "tabby", "tiger cat"}


@pytest.fixture(scope="module")
def chelsea(tmp_path_factory):
    skdata = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("photos") / "chelsea.jpg"
    Image.fromarray(skdata.chelsea()).save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "serve.log"
    args = ["--model", "efficientnet_lite0", "--max-upload-mb", str(MAX_MB), "--max-pixels", str(MAX_PIXELS)]
    with ServerProcess(args, log=log) as srv:
        yield srv


def post(server, route: str, name: str, data: bytes, ctype: str = "image/jpeg", **params) -> httpx.Response:
    return httpx.post(f"{server.url}{route}", files={"file": (name, data, ctype)}, params=params, timeout=120)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png_claiming(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (1-bit gray)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64) if idat is None else idat
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def bad_uploads(chelsea) -> list[tuple[str, dict, int, str]]:
    """(kind, httpx kwargs, expected status, a word the error must contain)."""
    jpeg = chelsea.read_bytes()
    real_bomb = io.BytesIO()
    Image.new("L", (6000, 4000)).save(real_bomb, "PNG")  # 24 MP of zeros: 24 kB on disk
    broken_png = png_claiming(64, 48, idat=b"\x78\x9c" + b"\xff" * 300)  # valid chunks, invalid deflate data

    def f(name: str, data: bytes, ctype: str = "image/jpeg") -> dict:
        return {"files": {"file": (name, data, ctype)}}

    return [
        ("empty file", f("empty.jpg", b""), 400, "empty"),
        ("text named .jpg", f("photo.jpg", b"hello, I am not a photo\n" * 20), 415, "not an image"),
        ("html page", f("index.png", b"<html><body>hi</body></html>", "image/png"), 415, "not an image"),
        ("truncated jpeg", f("cut.jpg", jpeg[: len(jpeg) // 3]), 400, "truncated"),
        ("png header bomb", f("bomb.png", png_claiming(100_000, 100_000), "image/png"), 413, "pixels"),
        ("24 MP png", f("big.png", real_bomb.getvalue(), "image/png"), 413, "pixels"),
        ("png with broken data", f("broken.png", broken_png, "image/png"), 400, "image"),
        ("over the byte limit", f("huge.jpg", jpeg + os.urandom(MAX_MB * 2**20)), 413, "limit"),
        ("no file field", {"data": {"photo": "chelsea.jpg"}}, 422, "file"),
        ("wrong field name", {"files": {"image": ("c.jpg", jpeg, "image/jpeg")}}, 422, "file"),
    ]


def test_predict_matches_cnnkit_predict(server, chelsea):
    from cnnkit.predict import predict_images

    r = post(server, "/predict", "chelsea.jpg", chelsea.read_bytes(), topk=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "efficientnet_lite0" and len(body["topk"]) == 3
    want = predict_images([chelsea], topk=3)[0]["topk"]
    assert body["topk"][0]["label"] == want[0]["label"] and want[0]["label"] in CATS
    assert [t["index"] for t in body["topk"]] == [t["index"] for t in want]
    assert body["topk"][0]["prob"] == pytest.approx(want[0]["prob"], abs=1e-4)
    # the content-type and file name are not trusted: the same bytes as "text/plain" still work
    assert (
        post(server, "/predict", "x.txt", chelsea.read_bytes(), "text/plain").json()["topk"][0]
        == body["topk"][0]
    )


def test_health_models_docs_page(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    models = httpx.get(server.url + "/models").json()
    assert models["loaded"]["model"] == "efficientnet_lite0" and models["loaded"]["num_classes"] == 1000
    assert models["loaded"]["preprocess"]["resample"] == "bicubic"
    assert "efficientnet_lite0" in models["pretrained"]
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/predict", "/explain", "/dogapp", "/health", "/models"} <= set(spec["paths"])
    assert "swagger" in httpx.get(server.url + "/docs").text.lower()
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and 'id="file"' in page.text
    assert httpx.get(server.url + "/static/app.js").status_code == 200


def test_explain_returns_a_heat_map_png(server, chelsea):
    r = post(server, "/explain", "chelsea.jpg", chelsea.read_bytes())
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
    heat = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), dtype=np.float32)
    photo = np.asarray(Image.open(chelsea).convert("RGB"), dtype=np.float32)
    assert heat.shape == photo.shape  # the overlay is drawn on the photo, at its size (<= 512 px)
    assert np.abs(heat - photo).mean() > 10  # the colour map is really there
    assert post(server, "/explain", "c.jpg", chelsea.read_bytes(), target=5000).status_code == 422


def test_bad_uploads_get_clear_errors_and_do_not_leak(server, chelsea):
    cases = bad_uploads(chelsea)
    for kind, kwargs, status, word in cases:
        r = httpx.post(server.url + "/predict", timeout=60, **kwargs)
        assert r.status_code == status, f"{kind}: {r.status_code} {r.text[:200]}"
        assert word in r.json()["error"], f"{kind}: {r.json()}"
    before = server.rss()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for i in range(200):
            kind, kwargs, status, _ = cases[i % len(cases)]
            assert client.post("/predict", **kwargs).status_code == status, kind
    after = server.rss()
    print(f"server RSS before {before / 2**20:.1f} MB, after 200 bad uploads {after / 2**20:.1f} MB")
    assert after - before < 64 * 2**20, f"RSS grew by {(after - before) / 2**20:.1f} MB"
    assert server.alive()
    good = post(server, "/predict", "chelsea.jpg", chelsea.read_bytes())
    assert good.status_code == 200 and good.json()["topk"][0]["label"] in CATS


def test_unknown_model_is_one_error_line():
    proc = subprocess.run(
        [sys.executable, "-m", "cnnkit", "serve", "--model", "no_such_net", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("cnnkit: error:") and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.slow
def test_load_50_concurrent_uploads(server, chelsea):
    """50 concurrent uploads on loopback: no errors; latency percentiles printed."""
    import time

    data = chelsea.read_bytes()

    def one(_: int) -> float:
        start = time.perf_counter()
        r = post(server, "/predict", "chelsea.jpg", data)
        assert r.status_code == 200, r.text
        return time.perf_counter() - start

    with ThreadPoolExecutor(50) as pool:
        latencies = sorted(pool.map(one, range(50)))
    p50, p95 = np.percentile(latencies, 50), np.percentile(latencies, 95)
    print(f"50 concurrent: p50 {p50 * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms, max {latencies[-1] * 1e3:.0f} ms")
    assert len(latencies) == 50


@pytest.mark.slow
def test_dogapp_route(server, chelsea):
    r = post(server, "/dogapp", "chelsea.jpg", chelsea.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["is_dog"] is False and body["is_human"] is False  # a cat: neither
    assert body["top_class"]["label"] in CATS and body["image"] == "chelsea.jpg"
    assert post(server, "/dogapp", "x.jpg", b"not an image").status_code == 415


@pytest.mark.slow
def test_onnx_runtime_with_two_workers(chelsea, tmp_path):
    args = ["--runtime", "onnx", "--workers", "2"]
    with ServerProcess(args, log=tmp_path / "serve.log") as srv:
        with httpx.Client(base_url=srv.url, timeout=120) as client:
            answers = [
                client.post("/predict", files={"file": ("c.jpg", chelsea.read_bytes())}).json()
                for _ in range(4)
            ]
        assert {a["runtime"] for a in answers} == {"onnx"}
        assert {a["topk"][0]["label"] for a in answers} <= CATS
        assert (
            post(srv, "/explain", "c.jpg", chelsea.read_bytes()).status_code == 200
        )  # torch model kept for CAMs
