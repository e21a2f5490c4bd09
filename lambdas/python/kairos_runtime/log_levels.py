"""Third-party loggers that would write secrets at DEBUG are held at WARNING, whatever the log level.

urllib3 logs every request line, query string included, and pycoingecko sends the CoinGecko key in
the query string; botocore logs response bodies, and an SSM ``GetParameter`` with decryption answers
with the key itself. ``LOG_LEVEL`` (Powertools) and Lambda's log-level setting move the root logger
(and Powertools' own); a level set on a library's logger wins over the root's for that library, so
these stay quiet even in a DEBUG run. Their warnings and errors still come through.
"""

from __future__ import annotations

import logging

QUIET_LOGGERS = (
    "urllib3",
    "requests",
    "charset_normalizer",
    "chardet",
    "curl_cffi",
    "httpx",
    "httpcore",
    "botocore",
    "boto3",
    "s3transfer",
)


def quiet_third_party_loggers() -> None:
    """Idempotent and cheap: called at the handler's import and again before every upstream call.

    A logger already at WARNING is left alone: ``setLevel`` empties every logger's cached
    ``isEnabledFor`` answers, a cost a call per request should not pay once nothing changes.
    """
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level != logging.WARNING:
            logger.setLevel(logging.WARNING)
