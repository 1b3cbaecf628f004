"""Errors a user can act on. Raise these (with the offending file, shape or value in the
message) for bad input; the CLI and the app show the message without a traceback."""


class RstnError(ValueError):
    """Bad input or configuration that the user can fix."""


class DataError(RstnError):
    """A CT, label, DICOM series or dataset folder that cannot be used as given."""


class CheckpointError(RstnError):
    """A checkpoint or model bundle that is not ours, is damaged, or does not fit the task."""
