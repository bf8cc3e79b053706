"""`python -m model_export COMMAND`: the commands live in model_export.cli; this file only runs them."""

from __future__ import annotations

import sys

from model_export.cli import main

sys.exit(main())
