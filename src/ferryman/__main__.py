"""python -m ferryman: the same as the ferryman command."""

from ferryman.cli.main import main

main()
