"""Path helpers that work the same on local folders and gs:// through Beam's FileSystems."""
