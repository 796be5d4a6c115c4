"""`python -m tinybert_edge ...` is the `tinybert-edge` command line (also under torchrun)."""

import sys

from tinybert_edge.app.cli import main

sys.exit(main())
