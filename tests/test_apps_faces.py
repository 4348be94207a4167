"""MTCNN with its real weights and OpenCV's Haar cascade, on real photos."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from cnnkit.apps.dogapp import torch_threads
from cnnkit.apps.faces import HaarDetector, MtcnnDetector, make_face_detector
from cnnkit.apps.mtcnn import MTCNN, ONet, PNet, RNet, load_nets, nms, weights_dir
from cnnkit.apps.photos import sample_photo
from cnnkit.errors import CnnkitError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):  # small ops: on a busy 2-core machine 2 threads are 10x slower
        yield


@pytest.fixture(scope="module")
def mtcnn() -> MTCNN:
    return MTCNN()


def test_weights_match_the_architecture_key_for_key() -> None:
    for name, net in (("pnet", PNet()), ("rnet", RNet()), ("onet", ONet())):
        state = torch.load(weights_dir() / f"mtcnn_{name}.pt", map_location="cpu", weights_only=True)
        own = net.state_dict()
        assert list(state) == list(own)
        assert all(state[k].shape == own[k].shape for k in own)


def test_a_weights_file_of_another_shape_is_refused(tmp_path) -> None:
    for name in ("pnet", "rnet", "onet"):
        state = torch.load(weights_dir() / f"mtcnn_{name}.pt", weights_only=True)
        if name == "rnet":
            state["conv5_1.weight"] = torch.zeros(3, 128)
        torch.save(state, tmp_path / f"mtcnn_{name}.pt")
    with pytest.raises(CnnkitError, match="conv5_1.weight"):
        load_nets(tmp_path)


def test_mtcnn_finds_the_astronauts_face_where_it_is(mtcnn: MTCNN) -> None:
    boxes, landmarks = mtcnn(sample_photo("astronaut"))
    assert len(boxes) == 1
    x1, y1, x2, y2, score = boxes[0]
    assert score > 0.99
    # Eileen Collins' face: centre near (222, 117) in the 512x512 photo, about 90 px wide.
    assert abs((x1 + x2) / 2 - 222) < 15 and abs((y1 + y2) / 2 - 117) < 20
    assert 70 < x2 - x1 < 120
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = landmarks[0]
    assert lx < nx < rx and max(ly, ry) < ny < min(mly, mry)  # eyes, then nose, then mouth
    assert x1 < lx and rx < x2 and y1 < ly and mly < y2


def test_mtcnn_finds_grace_hopper_and_nothing_on_the_cat_or_the_coffee(mtcnn: MTCNN) -> None:
    detector = MtcnnDetector()
    faces = detector(sample_photo("grace_hopper"))
    assert len(faces) == 1 and faces[0].x < 260 < faces[0].x + faces[0].w
    assert detector(sample_photo("chelsea")) == []
    assert detector(sample_photo("coffee")) == []


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array(
        [[0, 0, 99, 99, 0.8], [5, 5, 104, 104, 0.9], [200, 200, 240, 240, 0.7], [10, 10, 30, 30, 0.95]]
    )
    assert sorted(nms(boxes, 0.5).tolist()) == [1, 2, 3]  # the small box barely overlaps by IoU
    assert sorted(nms(boxes, 0.5, mode="min").tolist()) == [2, 3]  # ... but lies inside by "min"


def test_haar_finds_the_astronaut_face_and_has_a_one_line_error_without_opencv(monkeypatch) -> None:
    faces = HaarDetector()(sample_photo("astronaut"))  # the seed's cascade, largest box first
    assert faces[0].x < 222 < faces[0].x + faces[0].w and faces[0].y < 117 < faces[0].y + faces[0].h
    assert len(faces) == 2 and faces[1].y > 300  # ... and a false face on her suit (the app drops it)
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    with pytest.raises(CnnkitError, match=r'pip install "opencv-python-headless<5"'):
        HaarDetector()


def test_unknown_detector_name() -> None:
    with pytest.raises(CnnkitError, match="haar, mtcnn"):
        make_face_detector("yolo")
