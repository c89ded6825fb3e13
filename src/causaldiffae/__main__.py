import sys

from causaldiffae.cli import main

sys.exit(main())
