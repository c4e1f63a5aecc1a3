"""Draw the volunteers' app's home-screen icons (a door on the party's red) with Pillow, so
that no binary is committed without the means to remake it.

    python scripts/make_app_icons.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

STATIC = Path(__file__).resolve().parents[1] / "api" / "app" / "static"
RED, WHITE = (190, 16, 36), (255, 255, 255)


def icon(size: int, *, maskable: bool = False) -> Image.Image:
    """A white door with a knob on red; a maskable icon keeps it inside the safe zone."""
    image = Image.new("RGB", (size, size), RED)
    draw = ImageDraw.Draw(image)
    inset = 0.3 if maskable else 0.22
    left, right = size * (0.5 - inset * 0.75), size * (0.5 + inset * 0.75)
    top, bottom = size * inset, size * (1 - inset)
    draw.rounded_rectangle((left, top, right, bottom), radius=size * 0.04, fill=WHITE)
    r = size * 0.035
    cx, cy = right - size * 0.08, (top + bottom) / 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=RED)
    return image


def main() -> None:
    for size in (192, 512):
        icon(size).save(STATIC / f"icon-{size}.png", optimize=True)
    icon(512, maskable=True).save(STATIC / "icon-maskable-512.png", optimize=True)
    print(f"icons written to {STATIC}")


if __name__ == "__main__":
    main()
