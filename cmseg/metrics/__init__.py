"""Evaluation metrics. Pure numpy/OpenCV: nothing here imports torch."""
