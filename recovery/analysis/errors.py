"""The one error the analysis package raises for a problem with the data or the request.

Every message is a plain sentence a researcher can act on (which column, what is wrong, what to
do), never a traceback or a library's wording, so the admin page and ``run_analyses`` can show
it as it is. ``code`` names the kind of problem for callers that branch on it.
"""


class AnalysisError(ValueError):
    """The analysis cannot be run on this data with these choices; the message says why."""

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message
