"""``python -m featviz`` runs the command line (as ``torchrun -m featviz`` does)."""

from featviz.cli import main

main()
