"""YOLO detectors in PyTorch: Darknet cfg+weights, Ultralytics TorchScript,
class-aware NMS and the Beam ModelHandler. Imports torch."""
