"""Models-Genesis corruption: where each step acted is recorded exactly, and each step is what it claims."""

import numpy as np
import pytest
import torch

from medtl.config import SSLConfig
from medtl.ssl.restore import Corruptor


def corruptor(shape, **settings) -> Corruptor:
    step = Corruptor(shape, SSLConfig(**settings))
    step.set_random_state(7)
    return step


@pytest.mark.parametrize("shape", [(48, 40), (10, 24, 20)])
def test_voxels_outside_the_painted_region_are_the_unpainted_image_exactly(shape):
    image = torch.randn(1, *shape)
    painter = corruptor(shape, nonlinear_prob=0, shuffle_prob=0, paint_prob=1)
    seen = set()
    for _ in range(12):
        out = painter(image)
        painted = torch.from_numpy(out.painted)[None]
        assert out.painted.any() and not out.painted.all()
        torch.testing.assert_close(out.image[~painted], image[~painted], atol=1e-5, rtol=0)
        inside = out.image[painted]
        assert float(inside.min()) >= float(image.min()) - 1e-5 and float(inside.max()) <= float(image.max()) + 1e-5
        assert not torch.allclose(inside, image[painted])  # noise, not the image
        seen.add(out.outpainted)
    assert seen == {True, False}  # both in- and out-painting occur


def test_out_painting_keeps_only_boxes_and_in_painting_fills_them():
    image = torch.randn(1, 40, 40)
    outer = corruptor((40, 40), nonlinear_prob=0, shuffle_prob=0, paint_prob=1, inpaint_share=0)(image)
    inner = corruptor((40, 40), nonlinear_prob=0, shuffle_prob=0, paint_prob=1, inpaint_share=1)(image)
    assert outer.outpainted and not inner.outpainted
    assert outer.painted.mean() > 0.2  # the kept window is the smaller part
    assert inner.painted.mean() < 0.8


def test_local_shuffling_permutes_values_inside_each_box_only():
    image = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 64, 64) / 4096
    out = corruptor((64, 64), nonlinear_prob=0, shuffle_prob=1, paint_prob=0)(image)
    moved = torch.from_numpy(out.shuffled)[None]
    assert out.shuffled.any()
    torch.testing.assert_close(out.image[~moved], image[~moved], atol=1e-6, rtol=0)
    # a permutation inside the boxes: the same values, elsewhere (invertible given the permutation)
    torch.testing.assert_close(torch.sort(out.image[moved]).values, torch.sort(image[moved]).values, atol=1e-6,
                               rtol=0)
    assert not torch.equal(out.image[moved], image[moved])


def test_the_intensity_curve_is_monotone_so_it_can_be_inverted():
    image = torch.linspace(-2, 3, 32 * 32).reshape(1, 32, 32)
    out = corruptor((32, 32), nonlinear_prob=1, shuffle_prob=0, paint_prob=0)(image)
    assert out.curved
    values = out.image.flatten().numpy()
    assert np.all(np.diff(values) >= -1e-6)  # order kept: a monotone map of the intensities
    assert float(out.image.min()) >= -2 - 1e-5 and float(out.image.max()) <= 3 + 1e-5
    assert not torch.allclose(out.image, image, atol=1e-3)


def test_the_same_seed_gives_the_same_corruptions():
    image = torch.randn(1, 32, 32)
    first = [corruptor((32, 32))(image).image for _ in range(1)]
    step = corruptor((32, 32))
    again = step(image).image
    assert torch.equal(first[0], again)
    assert not torch.equal(step(image).image, again)
