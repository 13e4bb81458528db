"""``python -m ax_scheduler.cli``: the ``ax-scheduler`` command."""

from .commands import main

main()
