"""python -m tools.sentry_dev [PORT] [--json] [--fault NAME] [--quiet]: see receiver.py."""

import sys

from tools.sentry_dev.receiver import main

sys.exit(main(sys.argv[1:]))
