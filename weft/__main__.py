"""`python -m weft` works like `weft`."""

import sys

from weft.cli.main import main

sys.exit(main())
