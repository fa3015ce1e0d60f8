"""``picozoo pull | lock | verify | cache | mirror``: a thin layer over picozoo.hub."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..errors import NotCachedError, UnknownArtifactError, UsageError, VerifyFailedError
from ..hub.registry import ARTIFACT_KINDS
from .common import App, echo_json, format_option, info, store_options


def _artifact_option(default: tuple[str, ...]) -> Callable[[Any], Any]:
    return click.option(
        "--artifact",
        "-a",
        "kinds",
        multiple=True,
        default=default,
        show_default=True,
        type=click.Choice([*ARTIFACT_KINDS, "all"]),
        help="Artifact kind (repeatable); 'all' for every artifact of the model.",
    )


def _targets(app: App, model_ids: tuple[str, ...], kinds: tuple[str, ...]) -> list[Any]:
    """Resolve every (model, kind) before any download, so a typo fails fast."""
    out: list[Any] = []
    for m, postprocess in map(app.registry.resolve, model_ids):  # ids or upstream file stems
        chosen = m.kinds if "all" in kinds else [m.variant_kind(k, postprocess) for k in kinds]
        chosen = list(dict.fromkeys(chosen))
        if not chosen:
            raise UnknownArtifactError(m.id, "any", [])
        out += [m.artifact(k) for k in chosen]
    return out


@contextmanager
def _progress() -> Iterator[Any]:
    """A rich progress callback on stderr when it is a terminal, else None."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:

        def update(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done, total=total)

        yield update


@click.command(
    "pull",
    epilog="Example: picozoo pull picodet-s-416 --artifact inference --artifact onnx\n\n"
    'Example: cd "$(picozoo pull picodet-s-416)"',
)
@click.argument("model_ids", metavar="MODEL...", nargs=-1, required=True)
@_artifact_option(("inference",))
@click.option("--update-lock", is_flag=True, help="Accept a changed upstream file and re-pin it.")
@click.option("--require-hashes", is_flag=True, help="Refuse artifacts without a pinned hash.")
@format_option("table", "json")
@store_options()
def pull_cmd(
    app: App,
    model_ids: tuple[str, ...],
    kinds: tuple[str, ...],
    update_lock: bool,
    require_hashes: bool,
    fmt: str,
) -> None:
    """Download, verify and unpack artifacts; print each usable path on stdout.

    A tarball's path is its unpacked directory. Downloads resume, retry, and must match the
    hash pinned in the registry or the lock file (the first download pins it). With several
    artifacts, a failed one does not stop the others: a summary of what was fetched and what
    failed goes to stderr (and into --format json), and the exit code is non-zero (4 when a
    download failed).
    """
    from ..hub.pull_many import PullFailure, pull_many

    targets = _targets(app, model_ids, kinds)

    def fetched(entry: Any) -> None:
        if fmt == "table":
            click.echo(str(entry.path))

    def failed(failure: PullFailure) -> None:
        if len(targets) > 1:
            info(f"{failure.artifact.model_id} {failure.artifact.kind}: error: {failure.error}")

    with _progress() as progress:
        summary = pull_many(
            app.store,
            targets,
            on_fetched=fetched,
            on_failed=failed,
            update_lock=update_lock,
            require_hashes=require_hashes,
            progress=progress,
        )
    if fmt == "json":
        echo_json(summary.rows())
    if len(targets) > 1:
        info(summary.describe())
    error = summary.error()
    if error is not None:
        raise error


@click.command("lock", epilog="Example: picozoo lock picodet-s-416 picodet-m-416 --lock zoo.lock")
@click.argument("model_ids", metavar="MODEL...", nargs=-1, required=True)
@_artifact_option(("inference",))
@click.option("--update", is_flag=True, help="Re-hash upstream even if already pinned.")
@format_option("table", "md", "csv", "json")
@store_options()
def lock_cmd(
    app: App,
    model_ids: tuple[str, ...],
    kinds: tuple[str, ...],
    update: bool,
    fmt: str,
) -> None:
    """Pin sha256 and size of artifacts in the lock file without keeping extra copies.

    Uses the cache when the artifact is there, otherwise streams it through sha256 only.
    """
    from ..hub.pull import pin_artifact
    from ..render import render_rows

    rows = []
    with _progress() as progress:
        for art in _targets(app, model_ids, kinds):
            r = pin_artifact(app.store, art, update=update, progress=progress)
            rows.append(
                {"model": art.model_id, "kind": art.kind, "sha256": r.sha256, "size": r.size,
                 "from": r.how, "changed": r.changed, "url": art.url}
            )  # fmt: skip
    cols = [("model", "Model"), ("kind", "Kind"), ("sha256", "sha256"), ("size", "Size"),
            ("from", "From"), ("changed", "Changed")]  # fmt: skip
    render_rows(rows, cols, fmt)


def _check_ids(app: App, model_ids: tuple[str, ...]) -> None:
    """Unknown model ids fail with suggestions; the labels of converted outputs in the cache
    (``local-<name>`` for a local model) are known too."""
    store = app.store
    labels = {c.label for c in store.converted()}
    labels |= {d.parent.name for d in store.unreadable_converted()}
    registry_ids = [m for m in model_ids if m not in labels]
    if registry_ids:
        app.registry.select(registry_ids)


@click.command("verify", epilog="Example: picozoo verify picodet-s-416 --deep")
@click.argument("model_ids", metavar="[MODEL]...", nargs=-1)
@click.option("--deep", is_flag=True, help="Also check structure: tar members, infer_cfg.yml, "
              "onnx.checker, .pdparams (restricted read + param count).")  # fmt: skip
@format_option("table", "json")
@store_options(download=False)
def verify_cmd(app: App, model_ids: tuple[str, ...], deep: bool, fmt: str) -> None:
    """Re-hash cached artifacts and every unpacked file; exit non-zero on any problem."""
    from ..hub.verify import verify_cache
    from ..render import render_rows

    _check_ids(app, model_ids)
    result = verify_cache(app.store, app.registry, model_ids=model_ids or None, deep=deep)
    if fmt == "json":
        echo_json(
            {
                "ok": result.ok,
                "artifacts": result.rows,
                "problems": [str(p) for p in result.problems],
            }
        )
    else:
        cols = [("model", "Model"), ("kind", "Kind"), ("status", "Status"), ("files", "Files"),
                ("detail", "Detail")]  # fmt: skip
        if result.rows:
            render_rows(result.rows, cols, "table")
        for p in result.problems:
            click.echo(f"FAILED {p}")
    if not result.rows and not result.problems:
        info("the cache is empty: nothing to verify")
    if result.problems:
        raise VerifyFailedError(
            f"{len(result.problems)} problem(s) found",
            hint="re-download with `picozoo cache rm MODEL` then `picozoo pull MODEL` (a "
            "converted output is built again by the next `picozoo convert`)",
        )


@click.group("cache", epilog="Example: picozoo cache ls --format json")
def cache_group() -> None:
    """Inspect and clean the download cache."""


@cache_group.command("ls", epilog="Example: picozoo cache ls --format csv")
@format_option("table", "md", "csv", "json")
@store_options(download=False)
def cache_ls(app: App, fmt: str) -> None:
    """List cached artifacts and converted models: size, last use, verified, path."""
    from ..hub.maintenance import human_size, list_rows, partial_downloads
    from ..render import render_rows

    cache = app.store
    rows = list_rows(cache)
    if fmt != "json":
        for r in rows:
            r["size"] = r.pop("size_h")
    cols = [("model", "Model"), ("kind", "Kind"), ("size", "Size"), ("last_used", "Last used"),
            ("verified", "Verified"), ("path", "Path")]  # fmt: skip
    render_rows(rows, cols, fmt)
    parts = partial_downloads(cache)
    if parts:
        total = sum(p.stat().st_size for p in parts if p.name.endswith(".part"))
        info(f"{len(parts)} partial download file(s), {human_size(total)} (resume with pull)")


@cache_group.command("rm", epilog="Example: picozoo cache rm picodet-s-416")
@click.argument("model_ids", metavar="[MODEL]...", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every cached artifact.")
@store_options(download=False)
def cache_rm(app: App, model_ids: tuple[str, ...], everything: bool) -> None:
    """Remove cached artifacts and converted models of MODELs (pins are kept)."""
    from ..hub.maintenance import human_size, remove

    if everything == bool(model_ids):
        raise UsageError(
            "give MODEL ids or --all, not both or neither",
            hint="e.g. `picozoo cache rm picodet-s-416` or `picozoo cache rm --all`",
        )
    _check_ids(app, model_ids)
    removed = remove(app.store, None if everything else model_ids)
    skipped = [r for r in removed if r.reason.startswith("skipped")]
    for r in skipped:
        info(f"{r.reason}: {r.path}")
    freed = sum(r.size for r in removed)
    info(f"removed {len(removed) - len(skipped)} item(s), freed {human_size(freed)}")


@cache_group.command("prune", epilog="Example: picozoo cache prune --dry-run")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--part-age", type=float, default=24.0, show_default=True, metavar="HOURS",
              help="Remove unlocked partial downloads untouched for this long.")  # fmt: skip
@format_option("table", "json")
@store_options(download=False)
def cache_prune(app: App, dry_run: bool, part_age: float, fmt: str) -> None:
    """Remove stale partial downloads, abandoned staging folders and unreferenced files."""
    from ..hub.maintenance import human_size, prune
    from ..render import render_rows

    removed = prune(app.store, dry_run=dry_run, part_age_hours=part_age)
    rows = [r.to_dict() for r in removed]
    if fmt == "json":
        echo_json(rows)
    elif rows:
        render_rows(rows, [("path", "Path"), ("reason", "Reason"), ("size", "Bytes")], "table")
    verb = "would free" if dry_run else "freed"
    info(f"{len(rows)} item(s), {verb} {human_size(sum(r.size for r in removed))}")


@click.group("mirror", epilog="Example: picozoo mirror export /srv/picozoo-mirror")
def mirror_group() -> None:
    """Share the cache: export it as a static mirror in upstream's path layout."""


@mirror_group.command(
    "export",
    epilog="Example: picozoo mirror export /srv/zoo picodet-s-416 && "
    "PICOZOO_MIRROR=file:///srv/zoo picozoo pull picodet-s-416",
)
@click.argument("dest", metavar="DIR", type=click.Path(file_okay=False))
@click.argument("model_ids", metavar="[MODEL]...", nargs=-1)
@format_option("table", "json")
@store_options(download=False)
def mirror_export(app: App, dest: str, model_ids: tuple[str, ...], fmt: str) -> None:
    """Copy cached artifacts (all, or MODELs') to DIR/<upstream path> plus a SHA256SUMS file.

    Serve DIR with any static web server, or share it, and point PICOZOO_MIRROR at it.
    """
    from ..hub.mirror import export

    entries = app.store.entries()
    if model_ids:
        app.registry.select(model_ids)
        missing = [m for m in model_ids if not any(e.model_id == m for e in entries)]
        if missing:
            raise NotCachedError(
                f"nothing cached for {', '.join(missing)}",
                hint=f"pull first: `picozoo pull {' '.join(missing)} --artifact all`",
            )
        entries = [e for e in entries if e.model_id in model_ids]
    rows = export(entries, Path(dest))
    if fmt == "json":
        echo_json(rows)
    else:
        for r in rows:
            click.echo(r["path"])
    info(f"exported {len(rows)} file(s) to {dest}")
