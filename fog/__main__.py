import sys

from fog.cli import main

sys.exit(main())
