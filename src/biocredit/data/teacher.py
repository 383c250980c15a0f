"""Teacher tasks: regression targets made by a fixed random function of random inputs.

* ``linear-teacher`` (Lillicrap 2016, Fig. 1): ``y = T x`` with ``x ~ N(0, I_30)`` and
  ``T ~ U(−1, 1)^{10×30}``; 5000 training and 1000 test pairs.
* ``nonlinear-teacher`` (Lillicrap 2016, Fig. 2c-d): ``y = T_2 tanh(T_1 x)``, a random
  30-20-10 tanh network with ``T_1, T_2 ~ U(−1, 1)``; same sizes.
* ``amit-linear`` (Amit 2019, linear theory): the 40 inputs are the unit vectors (``X = I``),
  the targets ``Y`` have independent ``N(0, 0.2²)`` entries (10 per input); the test split is
  the training split.

Every draw is fixed (a generator seeded with 0), so the task is the same on every machine and
for every run seed; the run seed changes the network and its feedback.
"""

from __future__ import annotations

import functools

import numpy as np

from .dataset import Raw

INPUTS, HIDDEN, OUTPUTS, NUM_TRAIN, NUM_TEST = 30, 20, 10, 5000, 1000


def _raw(x: np.ndarray, y: np.ndarray, n_train: int) -> Raw:
    x, y = x.astype(np.float32), y.astype(np.float32)
    for a in (x, y):
        a.flags.writeable = False
    return Raw(x[:n_train], y[:n_train], x[n_train:], y[n_train:], y.shape[1], 1.0,
               regression=True)


@functools.lru_cache(maxsize=None)
def load_teacher_raw(kind: str, data_dir=None, download: bool = True) -> Raw:
    rng = np.random.default_rng(0)
    if kind == "amit-linear":
        x = np.eye(40)
        y = rng.normal(0.0, 0.2, size=(40, OUTPUTS))
        return _raw(np.concatenate([x, x]), np.concatenate([y, y]), len(x))
    x = rng.normal(size=(NUM_TRAIN + NUM_TEST, INPUTS))
    if kind == "linear-teacher":
        y = x @ rng.uniform(-1, 1, size=(OUTPUTS, INPUTS)).T
    else:
        t1 = rng.uniform(-1, 1, size=(HIDDEN, INPUTS))
        t2 = rng.uniform(-1, 1, size=(OUTPUTS, HIDDEN))
        y = np.tanh(x @ t1.T) @ t2.T
    return _raw(x, y, NUM_TRAIN)
