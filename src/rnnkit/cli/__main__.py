"""``python -m rnnkit.cli ...`` (as ``torchrun ... -m rnnkit.cli train ...`` starts it)."""

import sys

from . import main

sys.exit(main())
