"""``python -m gen3r.cli ...`` (and ``torchrun ... -m gen3r.cli ...``): the ``gen3r`` command."""

import sys

from gen3r.cli.main import main

sys.exit(main())
