"""Placeholder: replaced by the real commands."""

import click


@click.command("bench")
def bench_cmd() -> None:
    """(not implemented yet)"""


@click.command("report")
def report_group() -> None:
    """(not implemented yet)"""
