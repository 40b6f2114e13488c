"""The filter every log handler carries: no secret leaves in a log record (stderr or OTLP)."""

from __future__ import annotations

import logging

from madara_orchestrator.domain.redaction import SecretMask, redact


class RedactingFilter(logging.Filter):
    """Every line as it leaves: URLs cut to ``scheme://host[:port]`` and configured secrets masked, in the
    message (formatted with its arguments), the exception text and the stack. Installed on the handler, so
    it also sees records propagated from every library's logger."""

    def __init__(self, mask: SecretMask | None = None) -> None:
        super().__init__()
        self.mask = mask
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.mask)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.mask)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.mask)
        return True
