"""`reversenet explore`'s latencies through its real HTTP API, against the targets of issue 20.

    python benchmarks/explore.py [--model vgg16] [--layer conv4_3] [--other conv5_3] [--clicks 15]

The app is served by uvicorn on a loopback port in this process (random weights, the sample
photo, 224×224); every number is a whole HTTP request timed by the client (urllib), medians over
`--clicks` requests, each on another neuron of the layer. The first recording (the photo's one
forward pass through every layer, the guard's checks, the eight variants' bottleneck) is timed
once, as the first request that needs it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.parse
import urllib.request
from pathlib import Path

import reversenet
from reversenet.apps.explore import Explorer
from reversenet.apps.explore_web import app, served
from reversenet.inputs.spec import NetworkSpec


def get(base: str, path: str, **params: object) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=600) as response:
        body = json.loads(response.read())
    return time.perf_counter() - start, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--layer", default="conv4_3")
    parser.add_argument("--other", default="conv5_3", help="the layer switched to")
    parser.add_argument("--clicks", type=int, default=15)
    args = parser.parse_args()
    spec = NetworkSpec(args.model, "random")
    explorer = Explorer(spec.load(), spec, [reversenet.sample_image()])
    with served(app(explorer, token="t", hosts=["127.0.0.1"], out=Path("explore-bench"))) as base:
        rows = measure(base, args)
    print(f"{args.model}, 224×224, random weights; medians of {args.clicks} requests")
    for what, seconds, target in rows:
        verdict = "" if target is None else f"  target ≤ {target * 1000:.0f} ms: {'met' if seconds <= target else 'MISSED'}"
        print(f"{what:45} {seconds * 1000:8.0f} ms{verdict}")


def measure(base: str, args: argparse.Namespace) -> list[tuple[str, float, float | None]]:
    """(what, median seconds, target) for the first recording, clicks and a layer switch."""
    photo = "chelsea"
    first, page = get(base, "/api/channels", photo=photo, layer=args.layer)
    channels, (_, h, w) = [c["channel"] for c in page["channels"]], page["shape"]
    neurons = [f"neuron:{channels[i % len(channels)]},{(3 * i) % h},{(5 * i) % w}" for i in range(args.clicks)]
    eight = [get(base, "/api/reverse", photo=photo, layer=args.layer, select=n)[0] for n in neurons]
    one = [get(base, "/api/reverse", photo=photo, layer=args.layer, select=n, variants="desalinet")[0] for n in neurons]
    switch = [get(base, "/api/channels", photo=photo, layer=layer)[0]
              for _ in range(max(1, args.clicks // 3)) for layer in (args.other, args.layer)]  # fmt: skip
    return [("first recording (first /api/channels)", first, None),
            (f"click at {args.layer}: 8 variants", statistics.median(eight), 0.250),
            (f"click at {args.layer}: 1 variant", statistics.median(one), 0.100),
            ("switch layer (/api/channels)", statistics.median(switch), 0.300)]  # fmt: skip


if __name__ == "__main__":
    main()
