"""The comparison suite: ax-scheduler against what users would run instead (``python -m bench``)."""
