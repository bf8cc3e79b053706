"""Offline side: dataset adapters, replay through the profile fold, training, ONNX export, evaluation, publish."""
