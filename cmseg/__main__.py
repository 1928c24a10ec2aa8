"""``python -m cmseg`` is the same as the ``cmseg`` command."""

import sys

from cmseg.cli import main

sys.exit(main())
