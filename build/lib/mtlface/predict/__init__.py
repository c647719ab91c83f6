"""Inference: ``Predictor`` (faces in an image -> typed per-task predictions) for the demo,
batch prediction and exported models.

    from mtlface import Predictor
    predictor = Predictor.from_run("outputs/runs/2026-01-01_12-00-00")
    for face in predictor.predict("photo.jpg"):
        print(face.box, face["gender"].label, face["age"].years)
"""

from mtlface.predict.errors import ImageInputError, PredictError, RunFolderError
from mtlface.predict.faces import FaceSettings
from mtlface.predict.predictor import Predictor
from mtlface.predict.results import AgePrediction, FacePrediction, TaskPrediction
from mtlface.predict.runs import newest_run

__all__ = ["AgePrediction", "FacePrediction", "FaceSettings", "ImageInputError",
           "PredictError", "Predictor", "RunFolderError", "TaskPrediction", "newest_run"]
