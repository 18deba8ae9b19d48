"""The one kind of error a user fixes on their side: a bad flag, recipe, file, row or model choice.

`rlt` prints a `UsageError` as one line and exits 2. Any other exception is a bug in rlt (or a library under it)
and keeps its traceback, so that it never reads as a user's mistake. It subclasses ValueError, which the library's
callers already catch.
"""


class UsageError(ValueError):
    """Something the user asked for that cannot be done as asked; the message says what to change."""
