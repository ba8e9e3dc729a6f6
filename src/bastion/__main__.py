"""``python -m bastion`` runs the command line."""

from bastion.cli import app

app()
