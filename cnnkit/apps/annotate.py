"""Draw the dog app's answer onto a copy of the photo: face boxes, labels, the message,
and for a dog the Grad-CAM of its breed.

The copy is a PNG written atomically (``cnnkit.fileio.write_bytes_atomic``) into the
output folder as ``<stem>.png`` (``<stem>-2.png``, ... when two inputs share a stem).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnkit.apps.inputs import ImageInput, load_image
from cnnkit.fileio import write_bytes_atomic

FACE_COLOUR = (0, 220, 90)
BANNER_COLOUR = (0, 0, 0)
CAM_COLOUR, CAM_ALPHA = (255, 40, 0), 0.5


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def draw_result(image: Image.Image, result: dict[str, Any], cam: np.ndarray | None = None) -> Image.Image:
    """A copy of ``image`` with a box and label per face and the message in a banner on top.

    ``cam`` (H, W) in [0, 1], the breed's class activation map, tints the photo red where
    the network saw the breed.
    """
    out = image.convert("RGB").copy()
    if cam is not None:
        pixels = np.asarray(out, dtype=np.float32)
        weight = CAM_ALPHA * cam[..., None]
        pixels = (1 - weight) * pixels + weight * np.array(CAM_COLOUR, dtype=np.float32)
        out = Image.fromarray(pixels.round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    size = max(12, out.width // 40)
    font = _font(size)
    line = max(2, out.width // 250)
    for face, looks in zip(result["faces"], result["resembles"], strict=False):
        x, y, w, h = face["x"], face["y"], face["w"], face["h"]
        draw.rectangle((x, y, x + w, y + h), outline=FACE_COLOUR, width=line)
        label = f"human {face['score']:.2f}: {looks['label']}"
        box = draw.textbbox((x, y + h + 2), label, font=font)
        draw.rectangle(box, fill=FACE_COLOUR)
        draw.text((x, y + h + 2), label, fill=(0, 0, 0), font=font)
    per_line = max(20, int(out.width / (0.55 * size)))  # one line per subject, wrapped to the width
    text = "\n".join(textwrap.fill(part, per_line) for part in result["message"].split(" + "))
    banner = draw.multiline_textbbox((4, 4), text, font=font)
    draw.rectangle((0, 0, min(out.width, banner[2] + 4), banner[3] + 4), fill=BANNER_COLOUR)
    draw.multiline_text((4, 4), text, fill=(255, 255, 255), font=font)
    return out


def annotate_file(
    image: ImageInput,
    result: dict[str, Any],
    out_dir: Path,
    taken: set[str] | None = None,
    cam: np.ndarray | None = None,
) -> Path:
    """Write the annotated copy of ``image`` into ``out_dir``; returns its path."""
    name, photo = load_image(image)
    stem = Path(name).stem if isinstance(image, (str, Path)) else "image"
    taken = set() if taken is None else taken
    candidate, n = f"{stem}.png", 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}.png"
    taken.add(candidate)
    buffer = io.BytesIO()
    draw_result(photo, result, cam).save(buffer, format="PNG")
    path = Path(out_dir) / candidate
    write_bytes_atomic(path, buffer.getvalue())
    return path
