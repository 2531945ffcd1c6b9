"""The one place where bertserve's exceptions are defined.

Every error a user can cause derives from `BertServeError` and carries a message that says what
went wrong and how to fix it. The CLI prints that message on one line and exits non-zero; the
server maps the HTTP-facing subclasses to a status code and a `{"error": ...}` body.

    BertServeError
    ├── ConfigError          bad flag, unknown config key, impossible combination
    ├── DataError            unreadable or malformed data file (names file, line, problem)
    ├── PretrainedError      a --pretrained name or folder that cannot be loaded
    ├── CheckpointError      a TensorFlow checkpoint that cannot be parsed
    ├── RunFolderError       a run folder that is missing files or is inconsistent
    ├── ExportError          an export that cannot be written or a version folder that cannot be loaded
    ├── RequestError         a bad serving request (has `.status`, default 400)
    └── ClientError          a client call that failed: server down, timeout, or an error answer
                             (has `.status`: the HTTP status, or None when no answer came back)
"""

from __future__ import annotations


class BertServeError(Exception):
    """Base class of every error bertserve raises on purpose."""


class ConfigError(BertServeError):
    pass


class DataError(BertServeError):
    pass


class PretrainedError(BertServeError):
    pass


class CheckpointError(BertServeError):
    pass


class RunFolderError(BertServeError):
    pass


class ExportError(BertServeError):
    pass


class RequestError(BertServeError):
    """A request the server refuses; `status` is the HTTP status code to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class ClientError(BertServeError):
    """A call from `bertserve.client` that failed; `status` is the server's HTTP status code, or
    None when the server could not be reached or did not answer in time."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
