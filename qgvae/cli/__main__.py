"""``python -m qgvae.cli``."""

import sys

from . import main

sys.exit(main())
