"""Evaluation metrics; importing this package registers them in kdzoo's ``METRICS``."""
from .accuracy import Accuracy

__all__ = ['Accuracy']
