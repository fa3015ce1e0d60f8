"""``picozoo list`` and ``picozoo show``: browse the registry."""

from __future__ import annotations

import click

from .common import App, echo_json, format_option, pass_app, store_options


@click.command(
    "list",
    epilog="Example: picozoo list --family picodet --filter 'map>30' --filter 'cpu<10' --sort -map",
)
@click.option("--family", help="Only this family (picodet, picodet-legacy, other).")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="EXPR",
    help="Keep rows where EXPR holds, e.g. 'map>30', 'cpu<=10', 'size==416' (repeatable). "
    "Fields: map, map50, params, flops, cpu, lite, ncnn, size, id, family.",
)
@click.option("--sort", metavar="FIELD", help="Sort by FIELD; prefix '-' for descending.")
@format_option("table", "md", "csv", "json")
@pass_app
def list_cmd(
    app: App, family: str | None, filters: tuple[str, ...], sort: str | None, fmt: str
) -> None:
    """List the zoo with upstream's mAP, params, FLOPs and latency claims."""
    from ..catalog import LIST_COLUMNS, list_models
    from ..render import render_rows

    rows = list_models(app.registry, family=family, filters=filters, sort=sort)
    render_rows(rows, LIST_COLUMNS, fmt, title="PP-PicoDet zoo (upstream claims)")


@click.command(
    "show",
    epilog="Example: picozoo show picodet-s-416 --format json\n\n"
    "Example: picozoo show picodet_s_416_coco_lcnet   (upstream's name)",
)
@click.argument("model_id", metavar="MODEL")
@format_option("table", "json")
@store_options(download=False)
def show_cmd(app: App, model_id: str, fmt: str) -> None:
    """Show one model: upstream names, claims, benchmark conditions, artifacts, cache state.

    MODEL is an id or one of upstream's file stems (shown as aliases)."""
    from ..describe import describe_model

    info = describe_model(app.registry, model_id, app.store)
    if fmt == "json":
        echo_json(info)
        return
    _print_description(info)


def _print_description(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..render import cell

    console = Console()
    c = info["claims"]
    flags = [f for f in ("legacy", "quantized") if info.get(f)]
    console.print(
        f"[bold]{info['id']}[/bold]  {info['name']}  ({info['family_title']})"
        + (f"  [{', '.join(flags)}]" if flags else "")
    )
    if info["aliases"]:
        console.print(f"aliases (upstream names): {', '.join(info['aliases'])}", highlight=False)
    console.print(
        f"input {cell(info['input_size'])}  mAP {cell(c['map'])} / mAP50 {cell(c['map50'])}  "
        f"params {cell(c['params_m'])} M  FLOPs {cell(c['flops_g'])} G"
    )
    for device, ms in c["latency_ms"].items():
        console.print(
            f"latency {device}: {ms:g} ms  ({info['latency_conditions'].get(device) or '?'})"
        )
    table = Table(header_style="bold")
    for col in ("kind", "url", "size", "sha256", "cached"):
        table.add_column(col, overflow="fold")
    for a in info["artifacts"]:
        sha = (a["sha256"][:12] + "…") if a["sha256"] else "-"
        cached = ("verified " if a["verified"] else "") + a["path"] if a["cached"] else "no"
        table.add_row(a["kind"], a["url"], cell(a["size"]), sha, cached)
    console.print(table)
    for conv in info["converted"]:
        console.print(f"converted: {conv.get('path')}  {conv.get('summary', '')}")
