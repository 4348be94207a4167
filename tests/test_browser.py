"""The web page in a real browser: headless Chromium uploads a photo and reads the answer.

Chromium (Debian's ``chromium`` package) is driven over the DevTools protocol (a
websocket; no Playwright, whose browser download needs the internet): open the page,
put a real JPEG into the file input exactly as a user's pick does (``DOM.setFileInputFiles``
fires the same ``change`` event), wait for the page's own fetch to ``/predict`` and
``/explain``, read the predicted class from the DOM and take a screenshot. Under CI
(``CI=true``) a missing chromium is a failure, not a skip.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import need_chromium
from PIL import Image

from cnnkit.serve.testing import ServerProcess

CATS = {"Egyptian cat", "tabby", "tiger cat"}


class DevTools:
    """A minimal DevTools-protocol client: ``call(method, **params)`` -> result."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 2**20, open_timeout=30)
        self.ids = itertools.count(1)

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == msg_id:  # events (no id) are skipped
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(
            f"page never satisfied {expression!r}; body: {self.js('document.body.innerText')!r}"
        )

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def chromium(tmp_path):
    pytest.importorskip("websockets")
    exe = need_chromium()
    proc = subprocess.Popen(
        [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1100,1000",
            "about:blank",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline, port = time.monotonic() + 60, None
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}")
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = int(match.group(1)) if match else None
        assert port, "chromium did not print its DevTools port"
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_page_uploads_a_photo_and_shows_the_answer(chromium, tmp_path):
    skdata = pytest.importorskip("skimage.data")
    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(skdata.chelsea()).save(photo, quality=92)
    with ServerProcess(["--model", "efficientnet_lite0"], log=tmp_path / "serve.log") as server:
        chromium.call("Page.enable")
        chromium.call("Page.navigate", url=server.url + "/")
        chromium.wait_for("document.getElementById('model-info').textContent.startsWith('model:')")
        assert "heat maps on" in chromium.js("document.getElementById('model-info').textContent")
        root = chromium.call("DOM.getDocument")["root"]["nodeId"]
        node = chromium.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
        chromium.call("DOM.setFileInputFiles", nodeId=node, files=[str(photo)])
        state = chromium.wait_for(
            "['done', 'error'].includes(document.body.dataset.state) && document.body.dataset.state"
        )
        assert state == "done", chromium.js("document.getElementById('error').textContent")
        answer = chromium.js("document.getElementById('answer').textContent")
        bars = chromium.js("[...document.querySelectorAll('#bars li .label')].map(e => e.textContent)")
        widths = chromium.js("[...document.querySelectorAll('#bars li .bar span')].map(e => e.style.width)")
        chromium.wait_for("document.body.dataset.cam === 'ready'")
        cam_size = chromium.js(
            "[document.getElementById('cam').naturalWidth, document.getElementById('cam').naturalHeight]"
        )
        shot = chromium.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        # a file that is not an image: the page shows the server's error line instead of an answer
        fake = tmp_path / "notes.jpg"
        fake.write_text("not a photo\n")
        chromium.call("DOM.setFileInputFiles", nodeId=node, files=[str(fake)])
        chromium.wait_for("document.body.dataset.state === 'error'")
        error_line = chromium.js("document.getElementById('error').textContent")
    screenshot = tmp_path / "serve-screenshot.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    print(f"answer {answer!r}; bars {bars}; screenshot {screenshot}")
    copy_to = os.environ.get("CNNKIT_SCREENSHOT")
    if copy_to:
        Path(copy_to).write_bytes(screenshot.read_bytes())
    assert answer in CATS
    assert "not an image" in error_line
    assert bars[0] == answer and len(bars) == 5
    assert float(widths[0].rstrip("%")) > float(widths[-1].rstrip("%"))  # bars drawn to scale
    assert cam_size == [451, 300]  # the heat map of the uploaded photo, at its size
    with Image.open(screenshot) as image:
        assert image.width >= 1000 and image.height >= 600
