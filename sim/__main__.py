"""`python -m sim MODEL [options]`: see sim/cli."""

import sys

from sim.cli import main

sys.exit(main())
