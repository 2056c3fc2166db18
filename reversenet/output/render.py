"""Renderers: a reversed image (C, H, W, real-valued) to viewable uint8 pictures.

    paper     footnote 4 of the paper: v -> sigmoid(ln(99)·v/|a|), a the 0.5% quantile
              of all values, so a shows as 1% grey and −a as 99% (max |v| if a = 0)
    gamma     |v| normalised to [0, 1], then raised to the power 0.1 (Fig. 5)
    minmax    linear stretch of [min, max] to [0, 1]
    saliency  the L∞ norm over colour channels (Sect. 3.5), a heat map, and the
              heat map laid over the photo
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .. import choices
from ..inputs.images import to_uint8

Rendered = list[tuple[str, np.ndarray]]  # (file-name suffix, uint8 picture)


def _safe(scale: Tensor) -> Tensor:
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def paper(v: Tensor) -> Tensor:
    v = v.double()
    a = torch.quantile(v.flatten(), 0.005).abs()
    a = a if a > 0 else v.abs().max()
    return torch.sigmoid(math.log(99) * v / _safe(a))


def gamma(v: Tensor) -> Tensor:
    v = v.double().abs()
    return (v / _safe(v.max())) ** 0.1


def minmax(v: Tensor) -> Tensor:
    v = v.double()
    return (v - v.min()) / _safe(v.max() - v.min())


def saliency_map(v: Tensor) -> Tensor:
    """(H, W) in [0, 1]: max over channels of |v|, divided by its maximum."""
    s = v.double().abs().amax(0)
    return s / _safe(s.max())


def heat(s: Tensor) -> np.ndarray:
    """A one-channel map in [0, 1] as an RGB heat map (OpenCV's inferno)."""
    grey = (s.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    import cv2  # here: OpenCV loads only where a heat map is drawn

    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def _mapped(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor, np.ndarray | None], Rendered]:
    (suffix,) = SUFFIXES[fn.__name__]

    def rendered(v: Tensor, photo: np.ndarray | None = None) -> Rendered:
        return [(suffix, to_uint8(fn(v)))]

    return rendered


# The pictures each renderer makes (with a photo to overlay), as file-name suffixes: the
# paper's own rendering is the plain name, so that several renderers never share a file.
SUFFIXES = {"paper": ("",), "gamma": ("-gamma",), "minmax": ("-minmax",), "saliency": ("-saliency", "-overlay")}


def _saliency(v: Tensor, photo: np.ndarray | None = None) -> Rendered:
    heat_suffix, overlay_suffix = SUFFIXES["saliency"]
    hot = heat(saliency_map(v))
    out = [(heat_suffix, hot)]
    if photo is not None:
        blend = (0.5 * photo.astype(np.float64) + 0.5 * hot).round().astype(np.uint8)
        out.append((overlay_suffix, blend))
    return out


# in the order of reversenet.choices.RENDERERS, the names users choose from
RENDERERS: dict[str, Callable[[Tensor, np.ndarray | None], Rendered]] = dict(
    zip(choices.RENDERERS, (_mapped(paper), _mapped(gamma), _mapped(minmax), _saliency), strict=True)
)


def render(v: Tensor, how: str = "paper", photo: np.ndarray | None = None) -> Rendered:
    """Pictures of one reversed image (C, H, W); `photo` (H, W, 3) for overlays."""
    return RENDERERS[how](v.detach(), photo)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def grid(
    tiles: list[np.ndarray],
    columns: int,
    captions: list[str],
    column_titles: Sequence[str] = (),
    row_titles: Sequence[str] = (),
    title: str = "",
) -> np.ndarray:
    """Tiles of one size in a labelled grid, white background, like the paper's Fig. 3."""
    h, w = tiles[0].shape[:2]
    font, small = _font(max(12, w // 14)), _font(max(10, w // 18))
    pad, caption_h = 8, max(16, w // 11)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 2 * pad + max((int(measure.textlength(t, font=font)) for t in row_titles), default=0)
    top = (caption_h + pad if title else 0) + (caption_h if column_titles else 0) + pad
    rows = math.ceil(len(tiles) / columns)
    canvas = Image.new("RGB", (left + columns * (w + pad), top + rows * (h + caption_h + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((left, pad), title, fill="black", font=font)
    for c, text in enumerate(column_titles):
        draw.text((left + c * (w + pad) + w // 2, top - 4), text, fill="black", font=font, anchor="md")
    for r, text in enumerate(row_titles):
        draw.text((pad, top + r * (h + caption_h + pad) + h // 2), text, fill="black", font=font, anchor="lm")
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        x, y = left + (i % columns) * (w + pad), top + (i // columns) * (h + caption_h + pad)
        canvas.paste(Image.fromarray(tile), (x, y))
        draw.text((x + w // 2, y + h + 2), caption, fill="black", font=small, anchor="ma")
    return np.asarray(canvas)
