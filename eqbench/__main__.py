"""``python -m eqbench``: the ``eqbench`` command (:func:`eqbench.cli.main.main`)."""
import sys

from eqbench.cli.main import main

sys.exit(main())
