"""Exercise checkers, one module per chapter; :class:`ExerciseError` is raised on a wrong answer."""

from normlab.checks._base import ExerciseError

__all__ = ["ExerciseError"]
