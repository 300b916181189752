"""Errors a user (or an agent) can act on: each message is one sentence saying what to change."""


class TooltuneError(Exception):
    """Base class for errors whose message is meant for the user as-is."""


class ModelNotFoundError(TooltuneError):
    pass


class GGUFImportError(TooltuneError):
    pass


class WorkspaceError(TooltuneError):
    pass
