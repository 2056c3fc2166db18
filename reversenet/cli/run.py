"""`reversenet run`: batch runs from a config."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..errors import UsageError
from ..tables import Table
from .common import console, force_option, progress, show, summary


@click.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, the value read as YAML: --set weights=random --set 'layers=[conv3, pool5]'.")
@click.option("--dry-run", is_flag=True, help="Print what would be computed, per model, layer, variant and selector.")
@force_option
@click.option("--shard", default=None, metavar="I/N",
              help="Compute the I-th of N shares (I from 0), e.g. in a job array; then run once with --merge.")
@click.option("--merge", is_flag=True, help="Merge the shards' manifests, draw the montages, tables and index.html.")
def run(config: Path, sets: tuple[str, ...], dry_run: bool, force: bool, shard: str | None,
        merge: bool) -> None:  # fmt: skip
    """Run a config: many photos, models, layers, variants and selectors, one forward pass per
    batch; a manifest, montages, tables and an index.html in the output folder.

    Launched by torchrun, each process takes its share of the photos. A rerun skips what is
    current; a killed run loses nothing finished.

    \b
    Examples:
      reversenet run fig3-eight-variants --set weights=random
      reversenet run my.yaml --set images=photos/ --dry-run
      torchrun --nproc_per_node 2 -m reversenet run my.yaml
      reversenet run my.yaml --shard 0/2
      reversenet run my.yaml --shard 1/2
      reversenet run my.yaml --merge
    """
    from ..output import batch
    from ..output.config import load_config, parse_set, parse_shard

    cfg = load_config(config, parse_set(sets))
    if dry_run:
        show(batch.dry_run(cfg).table())
        return
    if shard and merge:
        raise UsageError("--shard and --merge go in separate calls: each shard, then one --merge")
    with progress("run") as update:
        result = batch.run(cfg, force=force, shard=parse_shard(shard) if shard else None, merge=merge, progress=update)
    for t in result.tables:
        show(Table.of(t["title"], t["columns"], t["rows"]))
    if not result.finished:
        again = " ".join(["reversenet run", shlex.quote(str(config)), *(f"--set {shlex.quote(s)}" for s in sets), "--merge"])
        console.print(f"shard done; when all are, run: {again}")
    elif cfg.report and (result.out / "index.html").exists():
        console.print(f"report: {result.out / 'index.html'}")
    summary(result)
