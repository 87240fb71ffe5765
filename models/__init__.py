"""Model families, one subpackage each; importing this package imports neither.

- :mod:`models.site`: per-site TensorFlow SavedModels (imports TF).
- :mod:`models.detector`: YOLO detectors in PyTorch (imports torch).

The subpackages are named so that no module path here equals one that
pickled third-party checkpoints refer to (YOLOv5's ``models.yolo``,
``models.common``): the detector loads TorchScript and Darknet files only
and never unpickles Python objects.
"""
