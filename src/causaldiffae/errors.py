"""One base class for bad user input, so the CLI can print it as a single line and exit."""


class UserError(ValueError):
    """Input that cannot be used; the message names the file, field or value at fault."""


class DivergedError(UserError):
    """A model produced non-finite values (NaN or inf): what it made cannot be measured, so the command stops."""


class TrainingError(UserError):
    """Training stopped: non-finite loss, or a run folder that cannot be started or resumed."""
