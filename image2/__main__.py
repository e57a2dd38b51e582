"""``python -m image2`` runs the command line."""

from image2.cli.main import main

main()
