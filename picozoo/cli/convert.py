"""Placeholder: replaced by the real commands."""

import click


@click.command("convert")
def convert_cmd() -> None:
    """(not implemented yet)"""


@click.command("inspect")
def inspect_cmd() -> None:
    """(not implemented yet)"""
