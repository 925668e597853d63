"""qgait-lab: quantization for gait recognition with binarized input (QGait), as a library and a lab."""

__version__ = "0.1.0"
