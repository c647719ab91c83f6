"""Tasks: each owns its head, its masked loss, its metrics and its decoding.

Targets arrive with a sentinel where a sample is not labelled for the task (-1 for classes,
NaN for ages). Losses average over labelled samples only; a batch with none gives a finite
zero that keeps the autograd graph whole (so DDP finds every parameter used).
"""

from mtlface.tasks.age import AgeReadout, AgeTask, OneOffAccuracy
from mtlface.tasks.base import Task
from mtlface.tasks.bins import AgeBins
from mtlface.tasks.classification import ClassificationTask

__all__ = ["AgeBins", "AgeReadout", "AgeTask", "ClassificationTask", "OneOffAccuracy", "Task"]
