"""Host crops of full-resolution images (sslax/data/crops.py) against torchvision's
RandomResizedCrop and Resize + CenterCrop, and the box distribution against its definition."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from sslax.data import crops


def _photo(h, w, seed=0):
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
  return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))


def _jpeg(image):
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, "JPEG", quality=95)
  return buf.getvalue()


def test_same_seed_same_crop_and_bytes_match_the_decoded_array():
  image = _photo(150, 200)
  a = crops.random_resized_crop(image, (1, 0, 7), 32)
  assert a.shape == (32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, crops.random_resized_crop(image, (1, 0, 7), 32))
  assert not np.array_equal(a, crops.random_resized_crop(image, (1, 1, 7), 32))
  encoded = _jpeg(image)
  decoded = np.asarray(Image.open(io.BytesIO(encoded)))
  # 16 px from ~100 px boxes: the JPEG is decoded at 1/2 or 1/4 scale (draft), the same box
  # resampled from there: it differs from the full decode by about what bilinear and bicubic
  # differ by.
  def mean_difference(a, b):
    return np.mean([np.abs(a(s).astype(float) - b(s)).mean() for s in range(8)])
  drafted = mean_difference(lambda s: crops.random_resized_crop(encoded, s, 16),
                            lambda s: crops.random_resized_crop(decoded, s, 16))
  filters = mean_difference(lambda s: crops.random_resized_crop(decoded, s, 16, interpolation="bicubic"),
                            lambda s: crops.random_resized_crop(decoded, s, 16))
  assert 0 < drafted < 1.2 * filters
  gray = crops.random_resized_crop(_jpeg(image)[:], 0, 8, channels=1)
  assert gray.shape == (8, 8, 1)


class _Draws:
  """A stream of uniforms in [0, 1) served as numpy's Generator and torch's functions see
  them, so sample_box and torchvision's get_params can be fed the very same draws."""

  def __init__(self, u):
    self.u, self.at = list(u), 0

  def _next(self):
    self.at += 1
    return self.u[self.at - 1]

  def uniform(self, lo, hi):
    return lo + (hi - lo) * self._next()

  def integers(self, lo, hi):
    return lo + int(self._next() * (hi - lo))


def test_box_equals_torchvision_get_params_draw_for_draw(monkeypatch):
  torch = pytest.importorskip("torch", reason="torch and torchvision are the optional bench/interop extras; CI installs neither")
  transforms = pytest.importorskip("torchvision.transforms", reason="torch and torchvision are the optional bench/interop extras; CI installs neither")
  u = np.random.default_rng(0).uniform(size=20000).astype(np.float32).astype(float)
  ours, theirs = _Draws(u), _Draws(u)

  class Empty:
    def uniform_(self, lo, hi):
      return torch.tensor([theirs.uniform(float(lo), float(hi))], dtype=torch.float64)

  monkeypatch.setattr(torch, "empty", lambda *a, **k: Empty())
  monkeypatch.setattr(torch, "randint", lambda lo, hi, size: torch.tensor([theirs.integers(lo, hi)]))
  # Shapes where some tries fail and, with a narrow image and a big scale, all ten do.
  cases = [((375, 500), (0.08, 1.0)), ((500, 333), (0.08, 1.0)), ((40, 400), (0.9, 1.0))]
  for (h, w), scale in cases:
    image = Image.new("RGB", (w, h))
    for _ in range(300):
      want = transforms.RandomResizedCrop.get_params(image, list(scale), [3 / 4, 4 / 3])
      assert crops.sample_box(ours, h, w, scale) == tuple(want)
  assert ours.at == theirs.at > 1000  # both consumed the same draws


def test_box_distribution():
  # Every first try fits a 1000 px square with scale <= 0.5: the area fraction is U(0.1, 0.5),
  # log(w / h) is U(log 3/4, log 4/3), the top-left corner uniform over the free range.
  boxes = np.array([crops.sample_box(np.random.default_rng((5, i)), 1000, 1000, (0.1, 0.5))
                    for i in range(3000)])
  top, left, h, w = boxes.T
  assert stats.kstest(h * w / 1e6, stats.uniform(0.1, 0.4).cdf).pvalue > 1e-3
  lo, hi = math.log(3 / 4), math.log(4 / 3)
  assert stats.kstest(np.log(w / h), stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3
  assert stats.kstest(top / (1000 - h + 1), "uniform").pvalue > 1e-3
  assert stats.kstest(left / (1000 - w + 1), "uniform").pvalue > 1e-3
  # The fallback (no try fits a 40 x 400 strip at scale 0.9): the centre, aspect 4/3.
  assert crops.sample_box(np.random.default_rng(0), 40, 400, (0.9, 1.0)) == (0, 173, 40, 53)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_crops_equal_torchvision_transforms(interpolation):
  transforms = pytest.importorskip("torchvision.transforms", reason="torch and torchvision are the optional bench/interop extras; CI installs neither")
  functional = pytest.importorskip("torchvision.transforms.functional", reason="torch and torchvision are the optional bench/interop extras; CI installs neither")
  mode = getattr(transforms.InterpolationMode, interpolation.upper())
  for h, w in [(375, 500), (333, 500), (120, 90)]:
    image = _photo(h, w, seed=h)
    pil = Image.fromarray(image)
    # Resize 256 + centre crop 224 (the papers' evaluation), and the same at 0.875 for 64 px.
    for size, resize in [(224, 256), (64, 73)]:
      want = transforms.Compose([transforms.Resize(resize, mode), transforms.CenterCrop(size)])(pil)
      np.testing.assert_array_equal(crops.center_crop(image, size, interpolation=interpolation),
                                    np.asarray(want))
    box = crops.sample_box(np.random.default_rng(3), h, w)
    want = functional.resized_crop(pil, *box, [48, 48], mode)
    np.testing.assert_array_equal(crops.random_resized_crop(image, 3, 48, interpolation=interpolation),
                                  np.asarray(want))
