"""The study's analyses as pure functions: pandas DataFrames in, result objects out.

Nothing here imports Django (or anything else of the project): the admin, the report and
``manage.py run_analyses`` build a frame with the dataset builder and call these functions, and a
researcher can call them on any frame with the right columns. Modules import each other
relatively so that the package also loads on its own.
"""

from .errors import AnalysisError
from .matching import MatchResult, common_support, estimate_att, love_plot_data

__all__ = (
    "AnalysisError",
    "MatchResult",
    "common_support",
    "estimate_att",
    "love_plot_data",
)
