"""`python -m numpynn` is the same as the `numpynn` command."""
from .cli import main

raise SystemExit(main())
