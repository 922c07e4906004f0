import sys

from client_demo.cli import main

sys.exit(main())
