"""Pictures for a person: an image enlarged with sharp pixels, and contact sheets (a grid of
tagged images with a title), written atomically as PNG."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np


def _font(size: int):
  from PIL import ImageFont  # pylint: disable=import-outside-toplevel
  try:
    from matplotlib import font_manager  # pylint: disable=import-outside-toplevel
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
  except Exception:  # pylint: disable=broad-except  # no matplotlib / FreeType: PIL's own font
    return ImageFont.load_default(size)


def display_image(image: np.ndarray, cell: int):
  """A uint8 image [H, W, C] as a PIL image whose longer side is about `cell` pixels: small images
  are enlarged by a whole factor with nearest neighbour (sharp pixels), large ones reduced. One
  channel shows as grey, three as RGB; of other counts the first (or first three) channels show."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3:
    raise ValueError(f"display_image: expected uint8 [H, W, C], got {image.dtype} {image.shape}.")
  c = image.shape[-1]
  pil = Image.fromarray(image[..., :3] if c >= 3 else image[..., 0],
                        mode="RGB" if c >= 3 else "L")
  side = max(image.shape[:2])
  if side <= cell:
    factor = max(1, cell // side)
    return pil.resize((pil.width * factor, pil.height * factor), Image.NEAREST)
  scale = cell / side
  return pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                    Image.LANCZOS)


def contact_sheet(images: np.ndarray, tags: Sequence[str], path: str,
                  title: Sequence[str] = (), cell: int = 96, columns: int | None = None,
                  tag_size: int = 14) -> str:
  """Writes a grid of `images` (uint8 [K, H, W, C]), each framed with its tag below, under the
  `title` lines, to the PNG `path` (atomically). Returns `path`."""
  from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel
  if len(images) != len(tags):
    raise ValueError(f"contact_sheet: {len(images)} images but {len(tags)} tags.")
  k = max(1, len(images))
  columns = columns or min(k, max(1, math.ceil(math.sqrt(2 * k))))
  rows = math.ceil(k / columns)
  tiles = [display_image(im, cell) for im in images]
  tile_w = max([t.width for t in tiles] + [cell])
  tile_h = max([t.height for t in tiles] + [1])
  tag_font, title_font = _font(tag_size), _font(15)
  probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  tag_w = max([probe.textlength(t, font=tag_font) for t in tags] + [0])
  cell_w = int(max(tile_w, tag_w)) + 12
  cell_h = tile_h + tag_size + 14
  title_h = (len(title) * 20 + 8) if title else 0
  title_w = max([probe.textlength(t, font=title_font) for t in title] + [0])
  width = max(columns * cell_w + 8, int(title_w) + 16)
  sheet = Image.new("RGB", (width, title_h + rows * cell_h + 8), "white")
  draw = ImageDraw.Draw(sheet)
  for i, line in enumerate(title):
    draw.text((8, 6 + 20 * i), line, fill="black", font=title_font)
  for i, (tile, tag) in enumerate(zip(tiles, tags)):
    x0 = 4 + (i % columns) * cell_w
    y0 = title_h + 4 + (i // columns) * cell_h
    ix = x0 + (cell_w - tile.width) // 2
    sheet.paste(tile.convert("RGB"), (ix, y0 + 2))
    draw.rectangle((ix - 1, y0 + 1, ix + tile.width, y0 + 2 + tile.height), outline="#888888")
    tw = draw.textlength(tag, font=tag_font)
    draw.text((x0 + (cell_w - tw) / 2, y0 + tile_h + 5), tag, fill="black", font=tag_font)
  return _save_png(sheet, path)


def png_bytes(image: np.ndarray, cell: int = 256) -> bytes:
  """uint8 [H, W, C] as PNG bytes, about `cell` pixels on its longer side (`display_image`)."""
  import io  # pylint: disable=import-outside-toplevel
  buf = io.BytesIO()
  display_image(image, cell).save(buf, format="PNG")
  return buf.getvalue()


def _save_png(image, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp.png"
  image.save(tmp)
  os.replace(tmp, path)
  return path
