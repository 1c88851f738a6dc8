"""``python -m gateway``: run the gateway alone, configured by environment variables."""

import sys

from .serve import main

if __name__ == "__main__":
    sys.exit(main())
