"""Placeholder: replaced by the real commands."""

import click


@click.command("pull")
def pull_cmd() -> None:
    """(not implemented yet)"""


@click.command("lock")
def lock_cmd() -> None:
    """(not implemented yet)"""


@click.command("verify")
def verify_cmd() -> None:
    """(not implemented yet)"""


@click.command("cache")
def cache_group() -> None:
    """(not implemented yet)"""


@click.command("mirror")
def mirror_group() -> None:
    """(not implemented yet)"""
