"""``python -m lamina.experiments NAME [--out DIR] [--fast]``."""
import sys

from . import main

sys.exit(main(prog="python -m lamina.experiments"))
