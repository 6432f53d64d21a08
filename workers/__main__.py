"""``python -m workers --home DIR``: one worker process (the supervisor starts these)."""

import sys

from workers.worker import main

sys.exit(main())
