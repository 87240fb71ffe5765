"""Shared by every layer: local-or-gs:// paths and the failure vocabulary.

Imports only the standard library and Beam's FileSystems (no TF, no torch).
"""
