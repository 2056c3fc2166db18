"""`reversenet explore`: click a neuron, see its reversed pictures, in the browser."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import webbrowser
from pathlib import Path
from typing import Any

import click

from .common import console, images_option, model_options, out_option, photos, spec


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command()
@model_options
@images_option
@out_option("Folder the page's save button writes to (as visualize names and records the pictures).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on; anything but loopback lets other machines in (a warning says so).")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
def explore(image_specs: tuple[str, ...], out: Path, host: str, port: int, open_browser: bool, **options: Any) -> None:
    """A local web app: pick a photo and a layer, click a channel or a position, and see the
    neuron's pictures for all eight variants at once, its receptive field on the photo.

    \b
    Examples:
      reversenet explore -w random
      reversenet explore -m alexnet -w random -i photos/ --open
    """
    import uvicorn

    from ..apps.explore import Explorer
    from ..apps.explore_web import app

    network_spec = spec(options)
    explorer = Explorer(network_spec.load(), network_spec, photos(image_specs))
    everywhere = host in ("0.0.0.0", "::")
    if not _loopback(host):
        checks = "; any Host header is accepted" if everywhere else ""
        console.print(f"[yellow]warning:[/] serving on {host}: other machines can reach this page (uploads and saving "
                      f"need the token{checks})")  # fmt: skip
    with socket.socket() as s:  # a free port, when none is given
        s.bind((host, port))
        port = s.getsockname()[1]
    token = secrets.token_urlsafe(16)
    hosts = ["*"] if everywhere else sorted({host, "127.0.0.1", "localhost"})
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/?token={token}"
    console.print(f"reversenet explore: {url}  (Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app(explorer, token=token, hosts=hosts, out=out), host=host, port=port, log_level="warning")
