"""``python -m lambda_executor.local_endpoint``: the Lambda-compatible endpoint the tests invoke.

It lives in ``lambda_executor.testing.local_endpoint``; this name is kept as an entry point.
"""

import sys

from lambda_executor.testing.local_endpoint import main

if __name__ == "__main__":
    sys.exit(main())
