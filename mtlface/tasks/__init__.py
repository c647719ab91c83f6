"""Tasks: one class per kind, each owning its head, masked loss, metrics, decoding, typed
predictions and evaluation columns. A task is declared in ``conf/tasks/<name>.yaml``: its
``_target_`` is its kind (``BinaryTask``, ``MulticlassTask``, ``AgeTask``, ``RegressionTask``),
its keys give its classes or range.

Targets arrive with a sentinel where a sample is not labelled for the task (-1 for classes,
NaN for numbers). Losses average over labelled samples only; a batch with none gives a finite
zero that keeps the autograd graph whole (so DDP finds every parameter used).
"""

from mtlface.tasks.age import AgeReadout, AgeTask, OneOffAccuracy
from mtlface.tasks.base import Task, task_from_description
from mtlface.tasks.bins import AgeBins
from mtlface.tasks.classification import BinaryTask, MulticlassTask
from mtlface.tasks.outputs import AgePrediction, TaskPrediction, ValuePrediction
from mtlface.tasks.regression import RegressionTask

__all__ = ["AgeBins", "AgePrediction", "AgeReadout", "AgeTask", "BinaryTask", "MulticlassTask",
           "OneOffAccuracy", "RegressionTask", "Task", "TaskPrediction", "ValuePrediction",
           "task_from_description"]
