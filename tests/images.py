"""Real images for the pretrained-model tests: photos and scanned text that scikit-image and
scikit-learn ship in their wheels (no download), cropped and resized to a model's input."""

from __future__ import annotations

import numpy as np


def _photos() -> list[np.ndarray]:
    """RGB photos as float arrays in [0, 1]: astronaut, coffee, chelsea, and scikit-learn's two."""
    import skimage.data as d

    out = [d.astronaut(), d.coffee(), d.chelsea()]
    try:
        from sklearn.datasets import load_sample_images

        out += list(load_sample_images().images)
    except ImportError:
        pass
    return [np.asarray(p, np.float32) / 255.0 for p in out]


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (h, w), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _crops(img: np.ndarray, n: int, aspect: float, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random crops of ``img`` with height/width ``aspect`` covering 40-100% of its short side."""
    H, W = img.shape[:2]
    out = []
    for _ in range(n):
        ch = max(1, int(min(H, W * aspect) * rng.uniform(0.4, 1.0)))
        cw = min(W, max(1, int(ch / aspect)))
        y, x = rng.integers(0, H - ch + 1), rng.integers(0, W - cw + 1)
        out.append(img[y:y + ch, x:x + cw])
    return out


def photos(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """N x 3 x h x w crops of the shipped photos, values in [0, 1]; the first is the astronaut whole."""
    rng = np.random.default_rng(seed)
    srcs = _photos()
    picks = [srcs[0]] + [c for i in range(n - 1) for c in _crops(srcs[i % len(srcs)], 1, h / w, rng)]
    return np.stack([_resize(p, h, w).transpose(2, 0, 1) for p in picks[:n]])


def faces(n: int, h: int, w: int) -> np.ndarray:
    """N x 3 x h x w: the astronaut's face, then scikit-image's lfw_subset faces (grey), in [0, 1]."""
    import skimage.data as d

    astro = np.asarray(d.astronaut(), np.float32)[20:220, 110:310] / 255.0
    lfw = d.lfw_subset()
    picks = [astro] + [np.repeat(lfw[i][:, :, None], 3, axis=2).astype(np.float32) for i in range(n - 1)]
    return np.stack([_resize(p, h, w).transpose(2, 0, 1) for p in picks[:n]])


def text_lines(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """N x 3 x h x w strips of scikit-image's scanned page and text images (grey, in [0, 1]);
    every other strip is turned upside down (what a text-direction classifier tells apart)."""
    import skimage.data as d

    rng = np.random.default_rng(seed)
    srcs = [np.asarray(d.page(), np.float32) / 255.0, np.asarray(d.text(), np.float32) / 255.0]
    out = []
    for i in range(n):
        img = srcs[i % 2]
        strip = _crops(img, 1, h / w, rng)[0]
        if i % 2:
            strip = strip[::-1, ::-1]
        out.append(np.repeat(_resize(strip, h, w)[None], 3, axis=0))
    return np.stack(out)
