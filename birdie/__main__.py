"""``python -m birdie`` (and ``torchrun -m birdie``) runs the command line."""

import sys

from birdie.cli import main

sys.exit(main())
