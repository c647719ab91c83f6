"""Outputs a user can trust: temperature scaling of class probabilities
(:mod:`.temperature`), split-conformal age intervals (:mod:`.conformal`), stored with the run
as ``calibration.json`` (:mod:`.store`) and fitted on its validation split (:mod:`.fit`)."""

from mtlface.calibration.conformal import check_level, conformal_quantile
from mtlface.calibration.store import (CALIBRATION_NAME, AgeInterval, Calibration,
                                       calibration_path, load_run_calibration)
from mtlface.calibration.temperature import TemperatureFit, fit_temperature

__all__ = ["CALIBRATION_NAME", "AgeInterval", "Calibration", "TemperatureFit",
           "calibration_path", "check_level", "conformal_quantile", "fit_temperature",
           "load_run_calibration"]
