import sys

from pingr.cli import main

sys.exit(main())
