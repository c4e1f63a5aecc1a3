"""The small chart in the nightly email: daily conversations against the pace needed."""

import functools
import io
from datetime import date

from PIL import Image, ImageDraw, ImageFont

__all__ = ["daily_chart_png"]

_W, _H, _PAD = 560, 180, 28
_BAR = (196, 30, 58)  # the party's red
_PACE = (40, 40, 40)
_GRID = (225, 225, 225)


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=11)


# Four colours in a palette image: a byte per pixel to compress instead of three, which
# halves the time of a chart; white first, so it is the background.
_PALETTE = [255, 255, 255, *_BAR, *_PACE, *_GRID]


def daily_chart_png(days: list[date], actual: list[int], needed: list[float]) -> bytes:
    """Bars of conversations per day, and a line of the conversations per day the pace needs."""
    image = Image.new("P", (_W, _H), 0)
    image.putpalette(_PALETTE)
    draw = ImageDraw.Draw(image)
    font = _font()
    top = max([*actual, *needed, 1]) * 1.15
    plot_w, plot_h = _W - 2 * _PAD, _H - 2 * _PAD

    def y(value: float) -> float:
        return _H - _PAD - value / top * plot_h

    for frac in (0.25, 0.5, 0.75, 1.0):
        draw.line([(_PAD, y(top * frac)), (_W - _PAD, y(top * frac))], fill=_GRID)
    n = max(len(days), 1)
    step = plot_w / n
    for i, value in enumerate(actual):
        x0 = _PAD + i * step + step * 0.15
        draw.rectangle([x0, y(value), x0 + step * 0.7, _H - _PAD], fill=_BAR)
    points = [(_PAD + (i + 0.5) * step, y(v)) for i, v in enumerate(needed)]
    if len(points) > 1:
        draw.line(points, fill=_PACE, width=2)
    draw.line([(_PAD, _H - _PAD), (_W - _PAD, _H - _PAD)], fill=_PACE)
    if days:
        draw.text((_PAD, _H - _PAD + 4), days[0].strftime("%-d/%-m"), fill=_PACE, font=font)
        label = days[-1].strftime("%-d/%-m")
        draw.text(
            (_W - _PAD - draw.textlength(label, font=font), _H - _PAD + 4),
            label,
            fill=_PACE,
            font=font,
        )
    # Only digits in the image: the built-in font has no å/ä/ö; the caption is in the HTML.
    draw.text((_PAD, 6), f"{top:.0f}", fill=_PACE, font=font)
    out = io.BytesIO()
    # Fast compression: thousands of charts a night; the few bytes saved are not worth it.
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
