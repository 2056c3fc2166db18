"""Fully convolutional application of a classifier (design page §6).

A classifier whose head is Linear layers after a flatten (AlexNet, VGG, ResNet, your
own) runs on a photo of any size once its head is written as convolutions:

- the fixed-size adaptive pooling before the flatten is dropped where, at the native
  input size, it is an identity (AlexNet's and VGG's 6×6 and 7×7); where it pools
  windows of a×b (ResNet's 7×7 to 1×1) it becomes a fixed a×b pooling of stride 1;
- the flatten is dropped;
- the first Linear becomes a convolution whose kernel is the flattened map's h×w
  (dilated by a×b after a fixed pooling), W (out, C·h·w) read as (out, C, h, w); the
  next ones become 1×1 convolutions.

At the native size the converted network gives the original logits as a 1×1 map; on
a larger photo, a map of the classifier's scores at every window of the native size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..core.graph import Graph, device_of
from ..errors import ReversenetError

# Layers a head may hold after the flatten: they act on each position alone.
_POSITIONWISE = (nn.Linear, nn.Dropout, nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU,
                 nn.Hardswish, nn.Tanh, nn.Sigmoid)  # fmt: skip
_POSITIONWISE_FUNCTIONS = {F.relu, torch.relu, F.dropout, F.gelu, F.silu, torch.sigmoid, torch.tanh}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_ADAPTIVE = {nn.AdaptiveAvgPool2d: nn.AvgPool2d, nn.AdaptiveMaxPool2d: nn.MaxPool2d}


def fully_convolutional(model: nn.Module, input_size: tuple[int, int], aliases: dict[str, str] | None = None) -> nn.Module:
    """`model` with its head as convolutions, so that it runs on inputs of any size.

    A Linear head after a flatten becomes convolutions; an adaptive pooling that is the
    identity at the native size is dropped (AlexNet, VGG), any other becomes a fixed
    pooling with stride 1 (docs/design.md §6).

    Parameters
    ----------
    model : torch.nn.Module
        A classifier whose head is Linear layers after a flatten.
    input_size : (int, int)
        The native (H, W), at which the converted network's output, (N, classes, 1, 1),
        equals the original's (N, classes).
    aliases : dict of str to str, optional
        Extra layer names, as in `Recording`.

    Returns
    -------
    torch.nn.Module
        The converted network (a torch.fx GraphModule) sharing the original's weights
        outside the head and keeping its module names, so layer names still apply; a
        model whose output is already a map, as is.

    Raises
    ------
    reversenet.ReversenetError
        A layer that cannot be made convolutional, named with the reason (a Softmax after
        the flatten, a LayerNorm between global pooling and flatten, no flatten, ...).

    Examples
    --------
    >>> import torch, torchvision, reversenet
    >>> model = torchvision.models.alexnet().eval()
    >>> fcn = reversenet.fully_convolutional(model, (224, 224))
    >>> x = torch.randn(1, 3, 224, 224)
    >>> torch.allclose(fcn(x).flatten(1), model(x), atol=1e-5)
    True
    >>> fcn(torch.randn(1, 3, 256, 320)).shape  # a map of class scores
    torch.Size([1, 1000, 2, 4])
    """
    device = device_of(model)
    example = torch.zeros(1, 3, *input_size, device=device)
    graph = Graph(model, aliases, example=example)
    shapes = graph.shapes(example)
    output = graph.nodes[-1].args[0]
    if not isinstance(output, fx.Node) or len(shapes.get(output.name, ())) != 1:
        return model  # already a map (or not a classifier): nothing to convert
    name = type(model).__name__
    flat = [n for n in graph.nodes if _is_flatten(graph, n) and len(shapes.get(n.name, ())) == 1
            and len(shapes.get(n.all_input_nodes[0].name, ())) == 3]  # fmt: skip
    if len(flat) != 1:
        raise ReversenetError(
            f"cannot make {name} fully convolutional: "
            + ("no flatten of a feature map before its output" if not flat else f"{len(flat)} flattens of feature maps")
        )
    flatten = flat[0]
    head = _after(graph, flatten)
    module = fx.GraphModule(model, graph.fx)
    channels, h, w = shapes[flatten.all_input_nodes[0].name]
    pool, window = _pooling(graph, flatten, shapes)
    if pool is not None:
        _replace_pool(module, graph, pool, window)
    first = True
    for node in head:
        layer = graph.step(node).op
        if isinstance(layer, nn.Linear):
            kernel = (h, w) if first else (1, 1)
            fan_in = channels * h * w if first else layer.in_features
            if layer.in_features != fan_in:
                raise ReversenetError(f"cannot make {name} fully convolutional: {node.target} takes "
                                      f"{layer.in_features} features, not the {fan_in} of the flattened map")  # fmt: skip
            dilation = window if first and kernel != (1, 1) else (1, 1)
            conv = _as_conv(layer, layer.in_features // (h * w) if first else fan_in, kernel, dilation)
            module.add_submodule(graph.step(node).name, conv)
            first = False
    flatten.replace_all_uses_with(flatten.all_input_nodes[0])
    module.graph.erase_node(flatten)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


def _is_flatten(graph: Graph, node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target is torch.flatten
    if node.op == "call_method":
        return node.target in _FLATTEN_METHODS
    return node.op == "call_module" and isinstance(graph.step(node).op, nn.Flatten)


def _after(graph: Graph, flatten: fx.Node) -> list[fx.Node]:
    """The head's layers, from the flatten to the output; each must act on each position alone."""
    later = graph.nodes[graph.nodes.index(flatten) + 1 : -1]
    head = []
    for node in later:
        op = graph.step(node).op
        ok = (
            (node.op == "call_module" and isinstance(op, _POSITIONWISE))
            or (node.op == "call_function" and node.target in _POSITIONWISE_FUNCTIONS)
            or (node.op == "call_method" and node.target in ("relu", "sigmoid", "tanh"))
        )
        if not ok:
            where = node.target if node.op == "call_module" else node.name
            kind = type(op).__name__ if isinstance(op, nn.Module) else getattr(op, "__name__", str(op))
            raise ReversenetError(
                f"cannot make {type(graph.model).__name__} fully convolutional: {where} ({kind}) follows the "
                "flatten; only Linear layers, Dropout and elementwise activations can become convolutions"
            )
        head.append(node)
    return head


def _pooling(graph: Graph, flatten: fx.Node, shapes: dict) -> tuple[fx.Node | None, tuple[int, int]]:
    """The adaptive pooling that feeds the flatten (through Dropout or Identity), and the
    window it pools at the native size; none when the flatten's map is not pooled."""
    name = type(graph.model).__name__
    node, between = flatten.all_input_nodes[0], None
    while type(graph.step(node).op) not in _ADAPTIVE:
        inputs = [n for n in node.all_input_nodes if n.op != "get_attr"]  # parameters are no signal
        if len(inputs) != 1:
            return None, (1, 1)  # a merge or the input: the map reaches the flatten unpooled
        if not (node.op == "call_module" and isinstance(graph.step(node).op, (nn.Dropout, nn.Identity))):
            between = between or node
        node = inputs[0]
    if between is not None:  # ConvNeXt's LayerNorm after its global pooling
        raise ReversenetError(f"cannot make {name} fully convolutional: {graph.name_of(between)} "
                              f"follows the global pooling {graph.name_of(node)}, so the head sees pooled features only")  # fmt: skip
    (h_in, w_in), (h, w) = shapes[node.all_input_nodes[0].name][-2:], shapes[node.name][-2:]
    if h_in % h or w_in % w:
        raise ReversenetError(
            f"cannot make {name} fully convolutional: {graph.name_of(node)} pools "
            f"{h_in}×{w_in} to {h}×{w} at the native size, windows of unequal sizes"
        )
    return node, (h_in // h, w_in // w)


def _replace_pool(module: fx.GraphModule, graph: Graph, pool: fx.Node, window: tuple[int, int]) -> None:
    """Drop an adaptive pooling that is an identity at the native size; make any other a
    fixed pooling of its window with stride 1 (a sliding window of the native size)."""
    source = pool.all_input_nodes[0]
    if window == (1, 1):
        pool.replace_all_uses_with(source)
    else:
        fixed = _ADAPTIVE[type(graph.step(pool).op)](window, stride=1)
        target = graph.step(pool).name if pool.op == "call_module" else f"{pool.name}_fixed"
        module.add_submodule(target, fixed)
        with module.graph.inserting_after(pool):
            new = module.graph.call_module(target, (source,))
        pool.replace_all_uses_with(new)
    module.graph.erase_node(pool)


def _as_conv(linear: nn.Linear, channels: int, kernel: tuple[int, int], dilation: tuple[int, int]) -> nn.Conv2d:
    """The convolution that computes `linear` on every kernel-sized window."""
    conv = nn.Conv2d(channels, linear.out_features, kernel, dilation=dilation, bias=linear.bias is not None)
    conv = conv.to(linear.weight)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(linear.out_features, channels, *kernel))
        if linear.bias is not None:
            assert conv.bias is not None  # made with a bias where linear has one
            conv.bias.copy_(linear.bias)
    return conv.train(linear.training).requires_grad_(linear.weight.requires_grad)
