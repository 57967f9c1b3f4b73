"""``python -m featviz.cli`` runs the command line."""

from featviz.cli import main

main()
