"""One base class for bad user input, so the CLI can print it as a single line and exit."""


class UserError(ValueError):
    """Input that cannot be used; the message names the file, field or value at fault."""


class DivergedError(UserError):
    """A model produced non-finite values (NaN or inf): what it made cannot be measured, so the command stops."""


def yaml_problem(err: Exception) -> str:
    """A YAML parse error as one line's tail that says where: ``at line 3, column 9: expected ...``."""
    mark = getattr(err, "problem_mark", None)
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"at line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else f"({what})"
