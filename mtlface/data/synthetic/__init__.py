"""The embedded default dataset: deterministic synthetic faces from several "sources".

Each source mimics a real dataset (which tasks it labels, split sizes, colour or grey, image size).
Every face has all five attributes drawn as visible traits that survive greyscale and 48 px:

- age: child faces are rounder with bigger, lower eyes (1-22 y); forehead wrinkles darken from
  ~22 y, hair greys from ~38 y, eye bags and nose-to-mouth folds from ~45 y. All ramps are
  continuous with per-face jitter, so both regression and age bins are learnable.
- gender: hair length (long hair beside the face vs a short cap), jaw shape (square vs pointed),
  beard shadow / moustache on some adult males, thinner brows and lipstick on some females;
  ~7 % of faces get the other gender's hair style so the task is not trivial.
- race: skin luminance (five levels ~30 grey values apart) plus eye height/tilt, nose width,
  lip thickness and brow weight.
- emotion: each class is a distinct mix of mouth curve/opening/asymmetry, brow angle and height,
  and eye openness, scaled by a random intensity. smile is the happy mouth (corners up).

Nuisances (pose, scale, lighting, noise, blur, background clutter, occluders) keep it non-trivial.
A manifest is generated once per settings hash under ``<root>/<hash>/`` and reused afterwards.
Modules: ``attributes`` (what a face is), ``render`` (drawing it), ``sources`` (the settings),
``provider`` (``SyntheticFaces``: generation and cache), ``__main__`` (the command).
"""

from mtlface.data.synthetic.attributes import sample_attributes
from mtlface.data.synthetic.provider import GENERATOR_VERSION, SyntheticFaces
from mtlface.data.synthetic.render import render_face
from mtlface.data.synthetic.sources import DEFAULT_SOURCES, assign_folds, normalize_sources

__all__ = ["DEFAULT_SOURCES", "GENERATOR_VERSION", "SyntheticFaces", "assign_folds",
           "normalize_sources", "render_face", "sample_attributes"]
