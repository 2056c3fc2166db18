"""Selectors: the signals they make, checked against hand-built expectations."""

from __future__ import annotations

import pytest
import torch

from reversenet import UsageError, parse_selector
from reversenet.core.selectors import Channel, Class, Neuron, TopK, imagenet_categories

Y = torch.tensor(
    [
        [[[0.0, 3.0], [1.0, 0.0]], [[2.0, 0.0], [9.0, 4.0]]],
        [[[7.0, 0.0], [0.0, 0.0]], [[0.0, 5.0], [6.0, 1.0]]],
    ]
)  # (N=2, C=2, 2, 2)


def signals(spec, y=Y, reverse=None, seed=0):
    return parse_selector(spec).signals(y, reverse=reverse or (lambda e: e), seed=seed)


def one_hot(index):
    e = torch.zeros(Y.shape[1:])
    e[index] = 1.0
    return e


def test_max_is_one_hot_at_each_images_argmax():
    e = signals("max")
    assert e.shape == (1, *Y.shape)
    torch.testing.assert_close(e[0, 0], one_hot((1, 1, 0)))  # 9.0
    torch.testing.assert_close(e[0, 1], one_hot((0, 0, 0)))  # 7.0


def test_topk_orders_by_activation():
    e = signals("topk:3")
    assert e.shape == (3, *Y.shape)
    torch.testing.assert_close(e[:, 1], torch.stack([one_hot((0, 0, 0)), one_hot((1, 1, 0)), one_hot((1, 0, 1))]))


def test_neuron_and_channel():
    e = signals("neuron:1,0,1")
    assert all(torch.equal(e[0, i], one_hot((1, 0, 1))) for i in range(2))
    e = signals("channel:1")
    expected = torch.zeros_like(Y)
    expected[:, 1] = Y[:, 1]
    torch.testing.assert_close(e[0], expected)


def test_full_mixture_noise():
    torch.testing.assert_close(signals("full")[0], Y)
    m = signals("mixture", seed=1)[0]
    assert (m > 0).all() and torch.allclose(m.flatten(1).sum(1), torch.ones(2))
    n = signals("noise", seed=1)[0]
    assert (n >= 0).all() and not torch.equal(n, signals("noise", seed=2)[0])
    torch.testing.assert_close(n, signals("noise", seed=1)[0])  # seeded


def test_random_skips_neurons_whose_image_is_zero():
    # a fake reversed network in which only neuron (1, 1, 1) reaches the image
    def reverse(e):
        return e[..., 1:, 1:, 1:] * 1.0

    e = signals("random", reverse=reverse, seed=4)
    for i in range(2):
        torch.testing.assert_close(e[0, i], one_hot((1, 1, 1)))


def test_random_gives_up_cleanly():
    from reversenet import ReversenetError

    with pytest.raises(ReversenetError, match="non-zero image"):
        signals("random", reverse=lambda e: torch.zeros_like(e))


def test_class_by_index_and_name():
    logits = torch.randn(2, 1000)
    tabby = imagenet_categories().index("tabby")
    for spec in (f"class:{tabby}", "class:tabby", "class:Tabby"):
        e = signals(spec, y=logits)
        assert e.shape == (1, 2, 1000) and e[0, :, tabby].eq(1).all() and e.sum() == 2


@pytest.mark.parametrize(
    "spec,message",
    [
        ("maxx", "did you mean max"),
        ("neuron:2,0,0", "out of range"),
        ("neuron:1,0", "out of range"),
        ("channel:2", "out of range"),
        ("topk:9", "out of range"),
        ("neuron:a", "whole numbers"),
        ("channel:1,2", "one number"),
        ("topk", "needs an argument"),
        ("max:3", "takes no argument"),
        ("class:tabby", "ImageNet"),
        ("class:5", "out of range"),
    ],
)
def test_bad_selectors(spec, message):
    with pytest.raises(UsageError, match=message):
        signals(spec)


@pytest.mark.parametrize(
    "spec,form",
    [
        ("topk:x", "topk:K, e.g. topk:3"),
        ("topk", "topk:K, e.g. topk:3"),
        ("topk:1,2", "topk:K, e.g. topk:3"),
        ("channel:x", "channel:C, e.g. channel:12"),
        ("channel:-1", "channel:C, e.g. channel:12"),
        ("neuron:a", "neuron:C,Y,X"),
        ("neuron", "neuron:C,Y,X"),
        ("class", "class:I|NAME"),
    ],
)
def test_parse_errors_show_the_selectors_own_form(spec, form):
    with pytest.raises(UsageError) as error:
        parse_selector(spec)
    message = str(error.value)
    assert form in message and "\n" not in message
    name = spec.partition(":")[0]
    assert all(other not in message for other in ("neuron", "channel", "topk", "class") if other != name)


def test_parse_returns_the_right_kinds():
    assert parse_selector("neuron:3") == Neuron((3,))
    assert parse_selector("channel:4") == Channel(4)
    assert parse_selector("topk:2") == TopK(2) and TopK(2).multiple
    assert parse_selector("class:tabby") == Class("tabby")
