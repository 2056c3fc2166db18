"""Renderers, against values computed by hand from their definitions."""

from __future__ import annotations

import math

import numpy as np
import torch

from reversenet.output.render import gamma, grid, minmax, paper, render, saliency_map


def test_paper_maps_the_quantile_to_one_percent_grey():
    v = torch.linspace(-1, 3, 1001).view(1, 1, -1)  # 0.5% quantile: -1 + 0.005 * 4 = -0.98
    a = -0.98
    out = paper(v)
    index_a = round((a + 1) / 4 * 1000)
    assert math.isclose(float(out[0, 0, index_a]), 0.01, rel_tol=1e-6)
    i_mirror = round((-a + 1) / 4 * 1000)  # v = +0.98 shows as 99%
    assert math.isclose(float(out[0, 0, i_mirror]), 0.99, rel_tol=1e-6)
    assert math.isclose(float(out[0, 0, 250]), 0.5, abs_tol=1e-6)  # v = 0 (to float32 linspace)


def test_paper_falls_back_to_max_abs_when_the_quantile_is_zero():
    v = torch.zeros(1, 1, 400)
    v[0, 0, -1] = 2.0
    out = paper(v)
    assert math.isclose(float(out[0, 0, -1]), 0.99, rel_tol=1e-9)


def test_gamma_minmax_saliency():
    v = torch.tensor([[[-4.0, 0.0, 2.0, 4.0]], [[1.0, 1.0, -3.0, 0.5]]])
    torch.testing.assert_close(gamma(v)[0, 0], torch.tensor([1.0, 0.0, 0.5**0.1, 1.0], dtype=torch.float64))
    torch.testing.assert_close(minmax(v)[0, 0], torch.tensor([0.0, 0.5, 0.75, 1.0], dtype=torch.float64))
    # L-infinity over channels: max(|-4|,1)=4, max(0,1)=1, max(2,3)=3, max(4,.5)=4; / 4
    torch.testing.assert_close(saliency_map(v)[0], torch.tensor([1.0, 0.25, 0.75, 1.0], dtype=torch.float64))


def test_blank_images_do_not_divide_by_zero():
    zero = torch.zeros(3, 4, 4)
    for how in ("paper", "gamma", "minmax", "saliency"):
        for _, picture in render(zero, how, np.zeros((4, 4, 3), np.uint8)):
            assert picture.dtype == np.uint8 and picture.shape == (4, 4, 3)


def test_render_outputs():
    v = torch.randn(3, 8, 8)
    photo = np.full((8, 8, 3), 200, np.uint8)
    assert [s for s, _ in render(v, "paper")] == [""]
    assert [s for s, _ in render(v, "saliency", photo)] == ["-saliency", "-overlay"]
    (_, rgb), = render(v, "minmax")
    assert rgb.min() == 0 and rgb.max() == 255


def test_grid_places_tiles_in_rows_and_columns():
    tiles = [np.full((20, 30, 3), 10 * i, np.uint8) for i in range(8)]
    out = grid(tiles, columns=4, captions=[str(i) for i in range(8)])
    assert out.shape[2] == 3
    assert out.shape[1] >= 4 * 30 and out.shape[0] >= 2 * 20
