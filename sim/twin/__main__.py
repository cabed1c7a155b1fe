"""`python -m sim.twin up|down|status|disaster|fault ...`, the same as `drbot twin ...`."""

import sys

from sim.twin.cli import main

sys.exit(main())
