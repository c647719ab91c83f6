"""MTCNN on onnxruntime: the networks (``networks``), crop and pyramid resampling
(``resample``), the cascade (``cascade``) and the implementations ``detector.backend`` names
(``backends``)."""
