"""``python -m lambda_executor.worker``: the executor loop's entry point by its older name.

The loop itself is ``scheduler.executor``, which every backend runs.
"""

import sys

from scheduler.executor import main

if __name__ == "__main__":
    sys.exit(main())
