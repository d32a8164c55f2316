"""The one exception type for mistakes a user can fix.

Every CLI catches :class:`UserError` at the top and prints its message as a single line with a
non-zero exit code, instead of a traceback. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input (a path, an argument, a file's contents) and how to fix it."""
