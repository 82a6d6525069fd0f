import sys

from morello.front.cli import main

sys.exit(main())
