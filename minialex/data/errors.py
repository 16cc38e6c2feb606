"""DataError: the one exception type the data pipeline raises for bad input.

Why errors name the path and the problem (and never surface a bare PIL
traceback) is explained in docs/data.md, "Errors".
"""


class DataError(ValueError):
    """A dataset path, folder or file cannot be used; the message says which and why."""


class CorruptImageError(DataError):
    """One image file cannot be decoded. ``path`` names it.

    The loader catches this one type to skip a sample (``on_error='skip'``);
    every other exception is a bug or an environment problem and propagates.
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"cannot decode image {self.path}: {self.reason}")
