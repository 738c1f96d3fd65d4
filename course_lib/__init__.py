"""course_lib: the helper library of the Keras course on recent advances in CNNs.

Modules follow the lecture: ``runtime`` (backend, devices, profile, seeding), ``data``
and ``pipelines`` (datasets, preprocessing, input pipelines), ``regularization``
(weight decay and dropout), ``gradcheck``, ``claims``, ``plots`` and ``widgets``,
and ``grading`` with ``cli`` for the instructor's tools.

Heavy libraries (Keras, TensorFlow, JAX, matplotlib) load only when a module needs them.
"""
__version__ = "0.1.0"

# Where the course lives, for the Colab badges and the notebooks' install line.
REPOSITORY = "https://github.com/cs5670-keras/cnn-course"

# Choose Keras's backend now, before anything imports Keras: JAX on a TPU, TensorFlow where
# installed, JAX otherwise; KERAS_BACKEND overrides (course_lib.runtime.choose_backend).
from .runtime import select_backend as _select_backend  # noqa: E402

_select_backend()


def setup(**kwargs):
    """Detect and print backend, devices, precision, profile and dataset; seed everything.

    See ``course_lib.runtime.setup`` for the arguments.
    """
    from .runtime import setup as _setup

    return _setup(**kwargs)
