"""``python -m picozoo`` runs the CLI."""

from .cli import main

main()
