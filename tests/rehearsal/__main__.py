"""`python -m tests.rehearsal` (make rehearse): the rehearsal's scenarios, one line per job."""

import sys

from tests.rehearsal.rehearse import main

sys.exit(main())
