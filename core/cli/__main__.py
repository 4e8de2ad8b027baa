"""``python -m neurohal.cli``: the same as the ``neurohal`` command."""

from neurohal.cli import main

main()
